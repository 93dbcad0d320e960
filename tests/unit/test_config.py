"""Tests for asyncinit.config: loading, strictness, JSON-path errors, policy, defaults."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from asyncinit.cgroups._host import is_cgroup2
from asyncinit.config import (
    CAPABILITIES,
    RLIMITS,
    Command,
    ConfigError,
    Hook,
    IDMapping,
    Mount,
    Namespace,
    Spec,
    default_spec_dict,
    load_config,
    spec_from_dict,
    spec_to_dict,
)
from tests.support.configs import DELETE, USERNS, edit, errors_of, good
from tests.support.runc import RUNC

DEVICES_WARNING = r"linux\.resources\.devices: device cgroup rules are not enforced"


BIND = {"destination": "/data", "type": "bind", "source": "/srv", "options": ["rbind"]}

# --- defaults ---------------------------------------------------------------------


def test_default_spec_loads_without_warnings() -> None:
    """runc's default deny-all device rule is enforced by the cgroup now: no warning."""
    spec = spec_from_dict(default_spec_dict())
    assert spec.process is not None
    assert spec.process.args == ("sh",)
    assert spec.process.terminal is True
    assert spec.root is not None
    assert spec.root.readonly is True
    assert spec.linux is not None
    assert spec.linux.namespace("mount") == Namespace("mount")


def test_rootless_default_spec_loads_without_warnings() -> None:
    spec = spec_from_dict(default_spec_dict(rootless=True))
    assert spec.linux is not None
    assert spec.linux.resources is None
    cgroup = ["cgroup"] if is_cgroup2() else []  # runc's example adds it on unified hosts
    expected = ["pid", "ipc", "uts", "mount", *cgroup, "user"]
    assert [ns.type for ns in spec.linux.namespaces] == expected
    assert spec.mounts[5].is_bind
    assert "gid=5" not in spec.mounts[2].options


def test_default_spec_dict_returns_fresh_copies() -> None:
    first = default_spec_dict()
    first["process"]["args"].append("x")
    assert default_spec_dict()["process"]["args"] == ["sh"]


@pytest.mark.skipif(RUNC is None, reason="runc is not installed")
@pytest.mark.parametrize("rootless", [False, True])
def test_real_runc_spec_loads_and_matches(tmp_path: Path, rootless: bool) -> None:
    assert RUNC is not None
    subprocess.run([RUNC, "spec", *(["--rootless"] if rootless else [])], cwd=tmp_path, check=True)
    path = tmp_path / "config.json"
    spec = load_config(path)
    written = json.loads(path.read_text())
    assert spec_to_dict(spec) == written
    version = subprocess.run([RUNC, "--version"], capture_output=True, text=True, check=True)
    if version.stdout.startswith("runc version 1.1."):  # the release our default copies
        assert written == default_spec_dict(rootless=rootless)


# --- round trip and loading ---------------------------------------------------------


@pytest.mark.parametrize("rootless", [False, True])
def test_round_trip_of_the_defaults_is_exact(rootless: bool) -> None:
    data = default_spec_dict(rootless=rootless)
    if not rootless:
        del data["linux"]["resources"]
    assert spec_to_dict(spec_from_dict(data)) == data


def test_dir_belongs_to_mount_commands_only() -> None:
    """OCI hooks have no "dir": the key is unknown there and ignored, as the spec says."""
    data = good()
    data["hooks"] = {"prestart": [{"path": "/bin/hook", "dir": "relative/is/not/checked"}]}
    spec = spec_from_dict(data)
    assert spec.hooks is not None
    assert spec.hooks.prestart == (Hook("/bin/hook"),)
    assert type(spec.hooks.prestart[0]) is Hook


def test_round_trip_keeps_every_modelled_field() -> None:
    data = good()
    hook = {"path": "/bin/hook", "args": ["hook", "x"], "env": ["A=1"], "timeout": 5}
    data["hooks"] = {name: [hook] for name in ("prestart", "createRuntime", "poststop")}
    data["domainname"] = "example.org"
    data["annotations"] = {"org.example": "yes"}
    data["process"]["user"].update(umask=0o22, additionalGids=[5, 6])
    data["process"]["consoleSize"] = {"height": 24, "width": 80}
    data["process"]["oomScoreAdj"] = 0
    data["process"]["capabilities"]["inheritable"] = []
    data["mounts"].append(
        {
            **BIND,
            "options": ["rbind", "idmap"],
            "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 10}],
            "gidMappings": [{"containerID": 0, "hostID": 1000, "size": 10}],
            "premount": [{"path": "/bin/pre"}],
            "postmount": [{"path": "/bin/post", "timeout": 3, "dir": "/srv"}],
        }
    )
    data["linux"].update(
        devices=[{"type": "c", "path": "/dev/fuse", "major": 10, "minor": 229, "fileMode": 438}],
        sysctl={"net.ipv4.ip_forward": "1", "kernel.shmmax": "1024"},
        rootfsPropagation="rslave",
    )
    spec = spec_from_dict(data)
    assert spec.mounts[-1].uid_mappings == (IDMapping(0, 1000, 10),)
    assert spec.mounts[-1].postmount == (Command("/bin/post", timeout=3, dir="/srv"),)
    assert spec.hooks is not None
    assert spec.hooks.create_runtime[0].args == ("hook", "x")
    assert spec.process is not None
    assert spec.process.capabilities is not None
    assert spec.process.capabilities.inheritable == ()
    assert spec.process.capabilities.effective is not None
    assert spec_to_dict(spec) == data


def test_spec_to_dict_omits_unset_fields() -> None:
    out = spec_to_dict(Spec("1.0.2", mounts=(Mount("/tmp", "tmpfs"),)))
    assert out == {"ociVersion": "1.0.2", "mounts": [{"destination": "/tmp", "type": "tmpfs"}]}


def test_unknown_keys_are_ignored() -> None:
    data = good()
    data["future"] = {"x": 1}
    data["process"]["user"]["username"] = "root"
    data["mounts"][0]["unknownKey"] = [1, 2]
    data["linux"]["netDevices"] = {"eth1": {}}
    assert spec_to_dict(spec_from_dict(data)) == good()


def test_null_optional_fields_are_accepted() -> None:
    spec = spec_from_dict({**good(), "hostname": None, "hooks": None})
    assert spec.hostname is None
    assert spec.hooks is None


def test_load_config_from_path_and_mapping(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(good()))
    assert load_config(path) == load_config(str(path)) == load_config(good())


def test_load_config_invalid_json(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text('{\n  "ociVersion": "1.0.2",\n  "root": }\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.errors == ["config.json: invalid JSON at line 3 column 11: Expecting value"]


def test_load_config_rejects_nan_and_missing_files(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text('{"ociVersion": NaN}')
    with pytest.raises(ConfigError, match=r"config\.json: invalid JSON: NaN"):
        load_config(path)
    with pytest.raises(ConfigError, match=r"missing\.json: cannot read"):
        load_config(tmp_path / "missing.json")


def test_config_error_lists_every_error_one_per_line() -> None:
    error = ConfigError(["a: x", "b.c: y"])
    assert str(error) == "a: x\nb.c: y"
    assert error.errors == ["a: x", "b.c: y"]


def test_tables() -> None:
    assert len(CAPABILITIES) == 41
    assert CAPABILITIES["CAP_CHOWN"] == 0
    assert CAPABILITIES["CAP_SYS_ADMIN"] == 21
    assert CAPABILITIES["CAP_CHECKPOINT_RESTORE"] == 40
    assert len(RLIMITS) == 16
    assert RLIMITS["RLIMIT_NOFILE"] == 7


# --- structural errors --------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("process.args.0", 5, "process.args[0]: expected a string, got 5"),
        ("mounts.2.options.1", 5, "mounts[2].options[1]: expected a string, got 5"),
        ("process.user.uid", "0", 'process.user.uid: expected an integer, got "0"'),
        ("process.user.uid", True, "process.user.uid: expected an integer, got true"),
        ("process.user.uid", 1.0, "process.user.uid: expected an integer, got 1.0"),
        ("process.user.uid", None, "process.user.uid: expected an integer, got null"),
        ("process.terminal", "false", 'process.terminal: expected a boolean, got "false"'),
        ("root.readonly", 1, "root.readonly: expected a boolean, got 1"),
        ("hostname", 7, "hostname: expected a string, got 7"),
        ("process.args", "sh", 'process.args: expected an array, got "sh"'),
        ("mounts", {"a": 1}, 'mounts: expected an array, got {"a": 1}'),
        ("mounts.1", "tmpfs", 'mounts[1]: expected an object, got "tmpfs"'),
        ("process", [], "process: expected an object, got []"),
        ("annotations", {"a": 1}, 'annotations["a"]: expected a string, got 1'),
        ("linux.sysctl", ["x"], 'linux.sysctl: expected an object, got ["x"]'),
        ("ociVersion", DELETE, "ociVersion: required field missing"),
        ("process.cwd", DELETE, "process.cwd: required field missing"),
        ("process.user", DELETE, "process.user: required field missing"),
        ("mounts.3.destination", DELETE, "mounts[3].destination: required field missing"),
        ("linux.namespaces.0.type", DELETE, "linux.namespaces[0].type: required field missing"),
        (
            "linux.uidMappings",
            [{"hostID": 0, "size": 1}],
            "linux.uidMappings[0].containerID: required field missing",
        ),
    ],
)
def test_structural_error_names_the_json_path(path: str, value: object, expected: str) -> None:
    assert errors_of((path, value)) == [expected]


def test_structure_errors_are_all_reported_at_once() -> None:
    errors = errors_of(
        ("ociVersion", 1),
        ("process.user.uid", "0"),
        ("process.user.gid", DELETE),
        ("mounts.2.options.1", 5),
        ("mounts.4", 3),
        ("linux.uidMappings", [{"hostID": 0, "size": 1}]),
    )
    assert errors == [
        "ociVersion: expected a string, got 1",
        'process.user.uid: expected an integer, got "0"',
        "process.user.gid: required field missing",
        "mounts[2].options[1]: expected a string, got 5",
        "mounts[4]: expected an object, got 3",
        "linux.uidMappings[0].containerID: required field missing",
    ]


def test_a_non_object_config_is_an_error() -> None:
    with pytest.raises(ConfigError) as info:
        spec_from_dict([])  # type: ignore[arg-type]
    assert info.value.errors == ["(root): expected an object, got []"]


# --- semantic errors ----------------------------------------------------------------

REFUSED = "not supported by asyncinit; refused rather than silently ignored"
CHAR_DEV = {"type": "c", "path": "/dev/fuse", "major": 10, "minor": 229}


@pytest.mark.parametrize(
    ("edits", "expected"),
    [
        ([("ociVersion", "")], ["ociVersion: must not be empty"]),
        ([("root", DELETE)], ["root: required field missing"]),
        ([("root.path", "")], ["root.path: must not be empty"]),
        ([("process.args", [])], ["process.args: must not be empty"]),
        ([("process.cwd", "tmp")], ['process.cwd: must be an absolute path, got "tmp"']),
        (
            [("mounts.0.destination", "proc")],
            ['mounts[0].destination: must be an absolute path, got "proc"'],
        ),
        (
            [("mounts.0.destination", "/a/..")],
            ['mounts[0].destination: must not be "/" (use root.path for the rootfs)'],
        ),
        ([("mounts.0.source", "pr\0c")], ["mounts[0].source: contains a NUL byte"]),
        (
            [("mounts.1.options.2", "mode=7\x0055")],
            ["mounts[1].options[2]: contains a NUL byte"],
        ),
        (
            [("linux.namespaces.0.type", "foo")],
            [
                'linux.namespaces[0].type: unknown namespace type "foo" '
                "(expected one of cgroup, ipc, mount, network, pid, time, user, uts)"
            ],
        ),
        (
            [("linux.namespaces.5", {"type": "pid"})],
            ['linux.namespaces[5].type: duplicate namespace "pid" (see linux.namespaces[0])'],
        ),
        (
            [("linux.timeOffsets", {"boottime": {"secs": 1}})],
            ["linux.timeOffsets: requires a time namespace in linux.namespaces"],
        ),
        (
            [("linux.namespaces.1.path", "net")],
            ['linux.namespaces[1].path: must be an absolute path, got "net"'],
        ),
        (
            [("linux.uidMappings", [{"containerID": 0, "hostID": 1000, "size": 1}])],
            ["linux.uidMappings: requires a user namespace in linux.namespaces"],
        ),
        (
            [("linux.namespaces.5", {"type": "user"})],
            [
                "linux.uidMappings: required when a user namespace is created",
                "linux.gidMappings: required when a user namespace is created",
            ],
        ),
        (
            [*USERNS, ("linux.namespaces.5.path", "/proc/1/ns/user")],
            [
                "linux.uidMappings: must not be given when joining a user namespace by path",
                "linux.gidMappings: must not be given when joining a user namespace by path",
            ],
        ),
        (
            [*USERNS, ("linux.uidMappings.0.size", 0)],
            ["linux.uidMappings[0].size: must be between 1 and 4294967295, got 0"],
        ),
        (
            [*USERNS, ("linux.gidMappings.0.hostID", -1)],
            ["linux.gidMappings[0].hostID: must be between 0 and 4294967294, got -1"],
        ),
        (
            [("linux.devices", [{**CHAR_DEV, "type": "x"}])],
            ['linux.devices[0].type: must be one of b, c, p, u, got "x"'],
        ),
        (
            [("linux.devices", [{"type": "b", "path": "/dev/sda", "minor": 0}])],
            ["linux.devices[0].major: required for character and block devices"],
        ),
        (
            [("linux.devices", [CHAR_DEV, {"type": "p", "path": "/dev/fuse"}])],
            ['linux.devices[1].path: duplicate device path "/dev/fuse" (see linux.devices[0])'],
        ),
        (
            [("linux.devices", [{**CHAR_DEV, "path": "dev/fuse"}])],
            ['linux.devices[0].path: must be an absolute path, got "dev/fuse"'],
        ),
        (
            [("linux.rootfsPropagation", "rprivat")],
            [
                'linux.rootfsPropagation: unknown propagation "rprivat" (expected one of '
                "private, rprivate, rshared, rslave, runbindable, shared, slave, unbindable)"
            ],
        ),
        (
            [("linux.namespaces.3", DELETE), ("domainname", "example.org")],
            [
                "hostname: requires a uts namespace in linux.namespaces",
                "domainname: requires a uts namespace in linux.namespaces",
            ],
        ),
        (
            [("linux.maskedPaths.0", "proc/acpi")],
            ['linux.maskedPaths[0]: must be an absolute path, got "proc/acpi"'],
        ),
        (
            [("linux.namespaces.4", DELETE)],
            [
                "mounts: requires a mount namespace in linux.namespaces",
                "root.readonly: requires a mount namespace in linux.namespaces",
                "linux.maskedPaths: requires a mount namespace in linux.namespaces",
                "linux.readonlyPaths: requires a mount namespace in linux.namespaces",
            ],
        ),
        (
            [
                ("linux.namespaces.4", DELETE),
                ("mounts", []),
                ("linux.maskedPaths", []),
                ("linux.readonlyPaths", []),
            ],
            ["root.readonly: requires a mount namespace in linux.namespaces"],
        ),
        (
            [("annotations", {"io.asyncinit.init": "daemon"})],
            ['annotations.io.asyncinit.init: "daemon" is not one of "exec", "supervise"'],
        ),
        (
            [("annotations", {"io.asyncinit.init.signal-group": "1"})],
            ['annotations.io.asyncinit.init.signal-group: expected "true" or "false", got "1"'],
        ),
        (
            [("hooks.prestart", [{"path": "hook"}, {"path": "/bin/hook", "timeout": 0}])],
            [
                'hooks.prestart[0].path: must be an absolute path, got "hook"',
                "hooks.prestart[1].timeout: must be greater than 0, got 0",
            ],
        ),
        (
            [("mounts.7", {**BIND, "premount": [{"path": "/x", "timeout": -1}]})],
            ["mounts[7].premount[0].timeout: must be greater than 0, got -1"],
        ),
        (
            [("mounts.7", {**BIND, "postmount": [{"path": "/x", "dir": "rel"}]})],
            ['mounts[7].postmount[0].dir: must be an absolute path, got "rel"'],
        ),
        (
            [("mounts.7", {**BIND, "options": ["rbind", "ro", "mode=755"]})],
            ['mounts[7].options: bind mounts take no filesystem data options, got "mode=755"'],
        ),
        (
            [("mounts.1.options.4", "idmap")],
            ['mounts[1].options: "idmap" is only valid on bind mounts'],
        ),
        (
            [("mounts.7", {**BIND, "options": ["rbind", "ridmap"]})],
            [
                'mounts[7].options: "ridmap" without uidMappings/gidMappings '
                "requires a user namespace"
            ],
        ),
        (
            [("mounts.1.uidMappings", [{"containerID": 0, "hostID": 1000, "size": 1}])],
            [
                "mounts[1].uidMappings: only valid on bind mounts",
                "mounts[1].gidMappings: required when uidMappings is given",
            ],
        ),
        (
            [("process.capabilities.bounding.1", "CAP_FOO")],
            ['process.capabilities.bounding[1]: unknown capability "CAP_FOO"'],
        ),
        (
            [("process.rlimits.1", {"type": "RLIMIT_FOO", "hard": 1, "soft": 1})],
            ['process.rlimits[1].type: unknown rlimit "RLIMIT_FOO"'],
        ),
        (
            [("process.rlimits.1", {"type": "RLIMIT_NOFILE", "hard": 1, "soft": 1})],
            ['process.rlimits[1].type: duplicate rlimit "RLIMIT_NOFILE"'],
        ),
        (
            [("process.rlimits.0.soft", 2048)],
            ["process.rlimits[0].soft: must not exceed hard (2048 > 1024)"],
        ),
        (
            [("process.user.uid", -1)],
            ["process.user.uid: must be between 0 and 2147483647, got -1"],
        ),
    ],
)
def test_semantic_error_names_the_json_path(
    edits: list[tuple[str, object]], expected: list[str]
) -> None:
    assert errors_of(*edits) == expected


_BAD_SYSCTL = 'invalid sysctl name (empty, "." or ".." component)'


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("kernel.shmmax", "requires an ipc namespace in linux.namespaces"),
        ("fs.mqueue.msg_max", "requires an ipc namespace in linux.namespaces"),
        ("net.ipv4.ip_forward", "requires a network namespace in linux.namespaces"),
        ("kernel.domainname", "requires a uts namespace in linux.namespaces"),
        ("kernel.hostname", 'not allowed; use the "hostname" field'),
        ("user.max_user_namespaces", "requires a user namespace in linux.namespaces"),
        ("vm.swappiness", "not namespaced (would change the host); refused"),
        ("net..ipv4", _BAD_SYSCTL),
        ("net.ipv4.", _BAD_SYSCTL),
        ("net.ipv4/../../vm/swappiness", _BAD_SYSCTL),
        ("net/ipv4/../../kernel/core_pattern", _BAD_SYSCTL),
        ("net/ipv4/ip_forward", "requires a network namespace in linux.namespaces"),
        ("vm/swappiness", "not namespaced (would change the host); refused"),
    ],
)
def test_sysctl_without_its_namespace_is_refused(key: str, expected: str) -> None:
    data = good()
    data["hostname"] = None
    data["linux"]["namespaces"] = [{"type": "mount"}]
    assert errors_of(("linux.sysctl", {key: "1"}), base=data) == [
        f'linux.sysctl["{key}"]: {expected}'
    ]


def test_sysctls_in_their_namespaces_are_accepted() -> None:
    data = good()
    for path, value in USERNS:
        edit(data, path, value)
    data["linux"]["sysctl"] = {
        "kernel.shmmax": "1",
        "fs.mqueue.msg_max": "10",
        "net.ipv4.ip_forward": "1",
        "net/ipv4/conf/all/forwarding": "1",  # runc's slash form
        "net.ipv4.conf.eth0/100.rp_filter": "1",  # "/" stands for a dot in an interface name
        "kernel.domainname": "x",
        "user.max_user_namespaces": "0",
    }
    spec_from_dict(data)


def test_sysctl_net_refused_when_joining_the_host_netns() -> None:
    data = good()
    data["linux"]["namespaces"][1]["path"] = "/proc/self/ns/net"
    assert errors_of(("linux.sysctl", {"net.ipv4.ip_forward": "1"}), base=data) == [
        'linux.sysctl["net.ipv4.ip_forward"]: not allowed in the host\'s network namespace'
    ]


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("linux.intelRdt", {"closID": "x"}),
    ],
)
def test_unenforced_fields_are_refused(path: str, value: object) -> None:
    assert errors_of((path, value)) == [f"{path}: {REFUSED}"]


def test_semantic_errors_are_all_reported_at_once() -> None:
    errors = errors_of(
        ("process.cwd", "relative"),
        ("mounts.0.destination", "/"),
        ("linux.namespaces.5", {"type": "bogus"}),
        ("linux.seccomp", {"defaultAction": "SCMP_ACT_BOGUS"}),
        ("linux.sysctl", {"vm.swappiness": "1"}),
    )
    assert errors == [
        'process.cwd: must be an absolute path, got "relative"',
        'mounts[0].destination: must not be "/" (use root.path for the rootfs)',
        'linux.namespaces[5].type: unknown namespace type "bogus" '
        "(expected one of cgroup, ipc, mount, network, pid, time, user, uts)",
        'linux.sysctl["vm.swappiness"]: not namespaced (would change the host); refused',
        'linux.seccomp.defaultAction: unknown action "SCMP_ACT_BOGUS"',
    ]
    assert str(ConfigError(errors)).count("\n") == len(errors) - 1


def test_cgroups_path_is_accepted() -> None:
    data = good()
    data["linux"]["cgroupsPath"] = "/asyncinit/test"
    spec = spec_from_dict(data)
    assert spec.linux is not None
    assert spec.linux.cgroups_path == "/asyncinit/test"


def test_unused_non_isolation_fields_are_accepted_silently() -> None:
    data = good()
    data["process"]["consoleSize"] = {"height": 24, "width": 80}
    data["annotations"] = {"a": "b"}
    data["linux"]["resources"] = {"memory": {}, "devices": []}  # empty limits impose nothing
    spec = spec_from_dict(data)
    assert spec.annotations == {"a": "b"}


def test_bind_mount_with_mappings_and_idmap_is_accepted() -> None:
    data = good()
    mapping = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    data["mounts"].append(
        {
            **BIND,
            "options": ["rbind", "ridmap", "rro"],
            "uidMappings": mapping,
            "gidMappings": mapping,
        }
    )
    mount = spec_from_dict(data).mounts[-1]
    assert mount.is_bind
    assert mount.parsed_options.extensions == {"ridmap"}
