"""dockyard.confinement: Docker's defaults and what the options change (pure logic, no containers)."""

from __future__ import annotations

import json

import pytest

from dockyard import confinement as cf
from dockyard.errors import InvalidParameter
from dockyard.models.runtime import RuntimeSpec

#: a fixed host so results do not depend on the machine running the tests
HOST = cf.HostFacts(arch="amd64", kernel=(6, 1), capabilities=cf.CAPABILITIES, seccomp=True, apparmor=False)


def names(seccomp) -> set[str]:
    return {n for rule in seccomp.syscalls for n in rule.names}


def allowed_without_args(seccomp) -> set[str]:
    return {n for rule in seccomp.syscalls if rule.action == "SCMP_ACT_ALLOW" and not rule.args for n in rule.names}


def test_default_capabilities_are_dockers_bounding_set():
    caps = cf.capabilities(host=HOST)
    mask = sum(1 << cf.CAPABILITIES.index(c) for c in caps)
    assert f"{mask:016x}" == "00000000a80425fb"  # CapBnd of a default docker container


@pytest.mark.parametrize(
    "add, drop, expected_in, expected_out",
    [
        (["NET_ADMIN"], [], {"CAP_NET_ADMIN", "CAP_CHOWN"}, set()),
        (["cap_sys_admin"], ["chown"], {"CAP_SYS_ADMIN"}, {"CAP_CHOWN"}),
        (["ALL"], ["SYS_ADMIN"], {"CAP_SYS_MODULE", "CAP_NET_ADMIN"}, {"CAP_SYS_ADMIN"}),
        (["NET_RAW"], ["ALL"], {"CAP_NET_RAW"}, {"CAP_CHOWN", "CAP_KILL"}),
    ],
)
def test_cap_add_and_drop(add, drop, expected_in, expected_out):
    caps = set(cf.capabilities(add, drop, host=HOST))
    assert expected_in <= caps and not expected_out & caps


def test_cap_drop_all_leaves_nothing_and_privileged_everything():
    assert cf.capabilities(drop=["ALL"], host=HOST) == []
    assert cf.capabilities(privileged=True, host=HOST) == list(cf.CAPABILITIES)
    limited = cf.HostFacts(capabilities=cf.CAPABILITIES[:38])
    assert cf.capabilities(privileged=True, host=limited) == list(cf.CAPABILITIES[:38])


def test_unknown_or_unavailable_capabilities_are_400():
    with pytest.raises(InvalidParameter, match='unknown capability: "CAP_FLY"'):
        cf.capabilities(add=["fly"], host=HOST)
    limited = cf.HostFacts(capabilities=tuple(c for c in cf.CAPABILITIES if c != "CAP_SYS_RESOURCE"))
    with pytest.raises(InvalidParameter, match="not available in the current environment"):
        cf.capabilities(add=["SYS_RESOURCE"], host=limited)


def test_default_seccomp_profile_is_an_allow_list_returning_eperm():
    profile = cf.default_seccomp_profile()
    assert profile.default_action == "SCMP_ACT_ERRNO" and profile.default_errno_ret == 1
    seccomp = cf.resolve(host=HOST).seccomp
    assert seccomp.architectures == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    allowed = allowed_without_args(seccomp)
    assert {"read", "write", "execve", "openat", "arch_prctl", "ptrace"} <= allowed
    # what the tests rely on: none of these is in the default filter
    for refused in (
        "keyctl",
        "add_key",
        "request_key",
        "bpf",
        "userfaultfd",
        "unshare",
        "mount",
        "setns",
        "kexec_load",
        "init_module",
        "reboot",
        "clone3",
        "open_by_handle_at",
    ):
        assert refused not in allowed, refused


def test_seccomp_rules_follow_capabilities_arch_and_kernel():
    default = cf.resolve(host=HOST).seccomp
    clone = [r for r in default.syscalls if r.names == ["clone"]]
    assert len(clone) == 1 and clone[0].args[0].op == "SCMP_CMP_MASKED_EQ"  # no new namespaces
    assert [r for r in default.syscalls if r.names == ["clone3"]][0].errno_ret == 38  # ENOSYS: libc falls back
    admin = cf.resolve(cap_add=["SYS_ADMIN"], host=HOST).seccomp
    assert {"mount", "unshare", "setns", "bpf", "clone3"} <= allowed_without_args(admin)
    assert not [r for r in admin.syscalls if r.names == ["clone3"] and r.action == "SCMP_ACT_ERRNO"]
    assert "arch_prctl" not in names(cf.resolve(host=cf.HostFacts(arch="arm64")).seccomp)
    assert "ptrace" not in allowed_without_args(cf.resolve(host=cf.HostFacts(kernel=(4, 4))).seccomp)


def test_seccomp_unconfined_custom_and_privileged():
    assert cf.resolve(security_opt=["seccomp=unconfined"], host=HOST).seccomp is None
    assert cf.resolve(privileged=True, host=HOST).seccomp is None
    custom = json.dumps(
        {
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [
                {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
                {
                    "name": "chmod",
                    "action": "SCMP_ACT_ERRNO",
                    "args": [{"index": 1, "value": 2048, "op": "SCMP_CMP_MASKED_EQ", "valueTwo": 2048}],
                },
            ],
        }
    )
    for privileged in (False, True):  # a named profile applies even to --privileged, as in Docker
        seccomp = cf.resolve(security_opt=[f"seccomp={custom}"], privileged=privileged, host=HOST).seccomp
        assert seccomp.default_action == "SCMP_ACT_ALLOW" and seccomp.syscalls[0].errno_ret == 13
        assert seccomp.syscalls[1].args[0].value_two == 2048
    assert cf.resolve(security_opt=["seccomp=builtin"], host=HOST).seccomp == cf.resolve(host=HOST).seccomp


@pytest.mark.parametrize(
    "profile, message",
    [
        ("{not json", "Decoding seccomp profile failed"),
        ('{"defaultAction": "SCMP_ACT_FLY"}', "defaultAction"),
        (
            '{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"name": "a", "names": ["b"], "action": "SCMP_ACT_ALLOW"}]}',  # noqa: E501
            "both 'name' and 'names'",
        ),
        ('{"defaultAction": "SCMP_ACT_ERRNO", "listenerPath": "/run/agent.sock"}', "listenerPath"),
        ('{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [], "bogus": 1}', "bogus"),
    ],
)
def test_bad_seccomp_profiles_are_400(profile, message):
    with pytest.raises(InvalidParameter, match=message):
        cf.resolve(security_opt=[f"seccomp={profile}"], host=HOST)


def test_a_custom_profile_needs_a_kernel_with_seccomp():
    with pytest.raises(InvalidParameter, match="seccomp is not enabled in your kernel"):
        cf.resolve(security_opt=['seccomp={"defaultAction":"SCMP_ACT_ALLOW"}'], host=cf.HostFacts(seccomp=False))
    assert cf.resolve(host=cf.HostFacts(seccomp=False)).seccomp is None


@pytest.mark.parametrize(
    "opts, nnp",
    [
        (["no-new-privileges"], True),
        (["no-new-privileges=true"], True),
        (["no-new-privileges:true"], True),
        (["no-new-privileges=false"], False),
        (["label=disable"], False),
        (["label:disable"], False),
    ],
)
def test_security_opts(opts, nnp):
    assert cf.resolve(security_opt=opts, host=HOST).no_new_privileges is nnp


@pytest.mark.parametrize(
    "opt", ["bogus", "fly=high", "no-new-privileges=maybe", "label=type:svirt_t", "writable-cgroups=true"]
)
def test_unknown_security_opts_are_refused(opt):
    with pytest.raises(InvalidParameter):
        cf.resolve(security_opt=[opt], host=HOST)


def test_daemon_no_new_privileges_default():
    assert cf.resolve(daemon_no_new_privileges=True, host=HOST).no_new_privileges


def test_apparmor_follows_the_host():
    assert cf.resolve(host=HOST).apparmor_profile == ""
    with pytest.raises(InvalidParameter, match="AppArmor is not enabled"):
        cf.resolve(security_opt=["apparmor=my-profile"], host=HOST)
    assert cf.resolve(security_opt=["apparmor=unconfined"], host=HOST).apparmor_profile == ""
    armored = cf.HostFacts(apparmor=True)
    assert cf.resolve(host=armored).apparmor_profile == cf.APPARMOR_PROFILE
    assert cf.resolve(privileged=True, host=armored).apparmor_profile == "unconfined"
    assert cf.resolve(security_opt=["apparmor=my-profile"], host=armored).apparmor_profile == "my-profile"
    text = cf.apparmor_profile_text()
    assert text.count("{") == text.count("}") and f"profile {cf.APPARMOR_PROFILE} " in text
    assert "deny mount," in text and "deny @{PROC}/kcore rwklx," in text


def test_masked_and_readonly_paths():
    default = cf.resolve(host=HOST)
    assert {
        "/proc/kcore",
        "/proc/keys",
        "/proc/timer_list",
        "/proc/sched_debug",
        "/sys/firmware",
        "/proc/scsi",
        "/proc/acpi",
    } <= set(default.masked_paths)
    assert default.readonly_paths == ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
    host = cf.HostFacts(thermal_throttle=("/sys/devices/system/cpu/cpu0/thermal_throttle",))
    assert "/sys/devices/system/cpu/cpu0/thermal_throttle" in cf.masked_paths(host)
    unconfined = cf.resolve(masked=[], readonly=[], host=HOST)  # --security-opt systempaths=unconfined
    assert unconfined.masked_paths == [] and unconfined.readonly_paths == []
    privileged = cf.resolve(privileged=True, host=HOST)
    assert privileged.masked_paths == [] and privileged.readonly_paths == []
    with pytest.raises(InvalidParameter):
        cf.resolve(masked=["/proc/../etc"], host=HOST)


def test_devices(tmp_path):
    default = cf.resolve(host=HOST)
    assert str(default.device_rules[0]) == "a" and not default.device_rules[0].allow
    assert "c 1:3 rwm" in [str(r) for r in default.device_rules]
    assert "c 10:229 rwm" not in [str(r) for r in default.device_rules]  # /dev/fuse needs --device
    fuse = cf.resolve(
        devices=[{"PathOnHost": "/dev/null", "PathInContainer": "/dev/mynull", "CgroupPermissions": "rw"}], host=HOST
    )
    assert [(d.path_in_container, d.type, d.major, d.minor) for d in fuse.devices] == [("/dev/mynull", "c", 1, 3)]
    assert str(fuse.device_rules[-1]) == "c 1:3 rw"
    with pytest.raises(InvalidParameter, match="error gathering device information"):
        cf.resolve(devices=[{"PathOnHost": str(tmp_path / "missing")}], host=HOST)
    (tmp_path / "file").write_text("x")
    with pytest.raises(InvalidParameter, match="is not a device node"):
        cf.resolve(devices=[{"PathOnHost": str(tmp_path / "file")}], host=HOST)
    with pytest.raises(InvalidParameter, match="permissions"):
        cf.resolve(devices=[{"PathOnHost": "/dev/null", "CgroupPermissions": "rwx"}], host=HOST)
    rule = cf.parse_device_cgroup_rule("c 42:* rmw")
    assert str(rule) == "c 42:* rmw"
    with pytest.raises(InvalidParameter):
        cf.parse_device_cgroup_rule("c 42:1 rwm\nb 8:0 rwm")
    privileged = cf.resolve(privileged=True, host=HOST)
    assert [str(r) for r in privileged.device_rules] == ["a"] and privileged.devices
    assert not any(d.path_on_host.startswith(("/dev/pts/", "/dev/shm/")) for d in privileged.devices)


def test_sysctls_only_namespaced_ones():
    ok = {"net.ipv4.ip_forward": "1", "kernel.shmmax": "1000", "fs.mqueue.msg_max": "20"}
    assert cf.resolve(sysctls=ok, host=HOST).sysctls == ok
    with pytest.raises(InvalidParameter, match="not in a separate kernel namespace"):
        cf.resolve(sysctls={"kernel.panic": "1"}, host=HOST)
    with pytest.raises(InvalidParameter, match="not allowed in host network namespace"):
        cf.resolve(sysctls={"net.ipv4.ip_forward": "1"}, host_network=True, host=HOST)
    with pytest.raises(InvalidParameter, match="invalid sysctl"):
        cf.resolve(sysctls={"net.ipv4.ip_forward": "1\nkernel.panic=1"}, host=HOST)


def test_runtime_spec_defaults_to_dockers_confinement(tmp_path):
    spec = RuntimeSpec(container_id="c" * 64, rootfs=tmp_path, args=["true"], log_path=tmp_path / "log")
    assert spec.confinement == cf.default_confinement()
    assert spec.confinement.seccomp is not None or not cf.HostFacts.current().seccomp
    assert "CAP_SYS_ADMIN" not in spec.confinement.capabilities


def test_seccomp_serialises_as_the_runtime_spec():
    oci = cf.resolve(host=HOST).seccomp.model_dump(by_alias=True, exclude_none=True)
    assert oci["defaultAction"] == "SCMP_ACT_ERRNO" and oci["defaultErrnoRet"] == 1
    masked = next(r for r in oci["syscalls"] if r["names"] == ["clone"])
    assert masked["args"] == [{"index": 0, "value": 2114060288, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]


def test_info_security_options():
    assert cf.info_security_options(host=HOST)[0] == "name=seccomp,profile=builtin"
    opts = cf.info_security_options(
        daemon_no_new_privileges=True, custom_seccomp=True, host=cf.HostFacts(apparmor=True)
    )
    assert opts[:3] == ["name=apparmor", "name=seccomp,profile=custom", "name=no-new-privileges"]


def test_daemon_wide_profile_and_no_new_privileges(tmp_path):
    profile = tmp_path / "p.json"
    profile.write_text(
        json.dumps(
            {
                "defaultAction": "SCMP_ACT_ERRNO",
                "syscalls": [{"names": ["read", "write", "exit_group"], "action": "SCMP_ACT_ALLOW"}],
            }
        )
    )
    security = cf.DaemonSecurity.from_options(profile, no_new_privileges=True)
    resolved = cf.resolve(
        daemon_seccomp=security.seccomp_profile, daemon_no_new_privileges=security.no_new_privileges, host=HOST
    )
    assert names(resolved.seccomp) == {"read", "write", "exit_group"} and resolved.no_new_privileges
    with pytest.raises(InvalidParameter, match="cannot read the seccomp profile"):
        cf.DaemonSecurity.from_options(tmp_path / "missing.json")
