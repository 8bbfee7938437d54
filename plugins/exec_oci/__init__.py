"""exec_oci: containers run by an OCI runtime (runc, crun), each watched by conmon."""
