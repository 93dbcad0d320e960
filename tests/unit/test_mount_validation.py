"""Mount validation: clear errors naming the JSON path, before anything is mounted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from asyncinit.config import ConfigError, spec_from_dict
from asyncinit.parent._compile import LaunchOptions, compile_spec
from tests.support.configs import errors_of, good

SEVEN = "mounts.7"  # runc's default config has 7 mounts: this appends an eighth


@pytest.mark.parametrize(
    ("mount", "expected"),
    [
        (
            {"destination": "/proc/sys", "type": "tmpfs", "source": "tmpfs"},
            "mounts[7].destination: mounts under /proc are restricted to runc's allowlist",
        ),
        (
            {"destination": "/proc/self/../sys/kernel", "type": "tmpfs", "source": "tmpfs"},
            "mounts[7].destination: mounts under /proc are restricted to runc's allowlist",
        ),
        (
            {"destination": "/proc", "type": "tmpfs", "source": "tmpfs"},
            "mounts[7].destination: only a proc filesystem may be mounted on /proc, not tmpfs",
        ),
        (
            {"destination": "/proc/kcore", "type": "bind", "source": "/dev/null"},
            "mounts[7].destination: mounts under /proc are restricted to runc's allowlist",
        ),
        (
            {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosiud"]},
            'mounts[7].options[0]: unknown option "nosiud" for tmpfs',
        ),
        (
            {"destination": "/x", "type": "sysfs", "source": "sysfs", "options": ["ro", "mode=1"]},
            'mounts[7].options[1]: unknown option "mode=1" for sysfs',
        ),
        (
            {"destination": "rel", "type": "tmpfs", "source": "tmpfs"},
            'mounts[7].destination: must be an absolute path, got "rel"',
        ),
        (
            {"destination": "/d", "type": "bind", "source": "/srv", "options": ["rbind", "size=1"]},
            'mounts[7].options: bind mounts take no filesystem data options, got "size=1"',
        ),
        (
            {"destination": "/d", "type": "tmpfs", "source": "tmpfs", "options": ["ridmap"]},
            'mounts[7].options: "ridmap" is only valid on bind mounts',
        ),
    ],
)
def test_mount_refused_with_its_json_path(mount: dict[str, Any], expected: str) -> None:
    assert errors_of((SEVEN, mount)) == [expected]


@pytest.mark.parametrize(
    "mount",
    [
        {"destination": "/proc/cpuinfo", "type": "bind", "source": "/srv", "options": ["bind"]},
        {"destination": "/proc/sys/kernel/ns_last_pid", "type": "bind", "source": "/srv"},
        {"destination": "/tmp", "type": "tmpfs", "options": ["size=1m", "mode=1777", "inode64"]},
        {"destination": "/o", "type": "overlay", "options": ["lowerdir=/a", "whatever=1"]},
        {"destination": "/p", "type": "proc", "options": ["hidepid=2", "subset=pid"]},
        {"destination": "/t", "type": "tmpfs", "options": ["context=system_u:object_r:x:s0"]},
    ],
)
def test_mount_accepted(mount: dict[str, Any]) -> None:
    data = good()
    data["mounts"].append(mount)
    spec_from_dict(data)


def compile_errors(data: dict[str, Any], tmp_path: Path, **kwargs: Any) -> list[str]:
    (tmp_path / "rootfs").mkdir(exist_ok=True)
    with pytest.raises(ConfigError) as info:
        compile_spec(spec_from_dict(data), tmp_path, "x", LaunchOptions(**kwargs))
    return info.value.errors


def test_bind_on_proc_needs_a_procfs_root(tmp_path: Path) -> None:
    data = good()
    data["mounts"][0] = {"destination": "/proc", "type": "bind", "source": "/tmp"}
    assert compile_errors(data, tmp_path) == [
        "mounts[0].source: /tmp: only a procfs root may be bound on /proc"
    ]
    data["mounts"][0] = {"destination": "/proc", "type": "bind", "source": "/proc/sys"}
    assert compile_errors(data, tmp_path) == [
        "mounts[0].source: /proc/sys: only a procfs root may be bound on /proc"
    ]
    data["mounts"][0] = {"destination": "/proc", "type": "bind", "source": "/proc"}
    compile_spec(spec_from_dict(data), tmp_path, "x")  # the host's procfs root: allowed


def test_missing_bind_source_is_refused_at_compile_time(tmp_path: Path) -> None:
    data = good()
    data["mounts"].append({"destination": "/d", "type": "bind", "source": "no/such/dir"})
    assert compile_errors(data, tmp_path) == [
        "mounts[7].source: no/such/dir: bind source does not exist"
    ]


@pytest.mark.parametrize("propagation", ["private", "rprivate"])
def test_private_root_propagation_refused_without_pivot_root(
    tmp_path: Path, propagation: str
) -> None:
    data = good()
    data["linux"]["rootfsPropagation"] = propagation
    assert compile_errors(data, tmp_path, no_pivot_root=True) == [
        f"linux.rootfsPropagation: {propagation!r} cannot be used without pivot_root"
    ]
    compile_spec(spec_from_dict(data), tmp_path, "x")  # fine with pivot_root


def test_idmapped_binds_become_mount_sources(tmp_path: Path) -> None:
    data = good()
    mapping = [{"containerID": 0, "hostID": 1000, "size": 10}]
    data["mounts"] += [
        {
            "destination": "/a",
            "type": "bind",
            "source": "/srv",
            "options": ["rbind", "ridmap"],
            "uidMappings": mapping,
            "gidMappings": mapping,
        },
        {"destination": "/b", "type": "bind", "source": "/srv", "options": ["bind"]},
    ]
    (tmp_path / "rootfs").mkdir()
    compiled = compile_spec(spec_from_dict(data), tmp_path, "x")
    assert [m["idmap"] for m in compiled.plan["mounts"][7:]] == [True, False]
    source = compiled.mount_sources[7]
    assert (source.source, source.recursive, source.idmap_recursive) == ("/srv", True, True)
    assert source.uid_map == source.gid_map == "0 1000 10\n"
    assert set(compiled.mount_sources) == {7}
