"""aufs storage driver: Docker's AUFS layout on kernel aufs, or on unionfs-fuse where the kernel has none."""
