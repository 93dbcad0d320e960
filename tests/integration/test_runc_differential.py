"""Differential: the same bundle under runc and under asyncinit gives the same mount table.

runc here is Debian's 1.1.5.  What the comparison normalizes, and why (see
docs/mounts.md, "Differences from runc"):

* the rootfs's host path (each runtime gets its own copy of the image);
* mount ids and anonymous device numbers (0:N) differ between any two runs;
  a mount's parent is compared by its mount point instead;
* peer group numbers (``shared:N``, ``master:N``) likewise: only their kind is kept;
* cgroup bind roots: runc 1.1.5 creates a cgroup per container and shows that one,
  asyncinit manages no cgroups and shows the one it runs in;
* the /sys/fs/cgroup tmpfs: asyncinit remounts it read-only with the rest of the
  cgroup mount (runc leaves it writable);
* a tmpfs without ``mode=`` over an existing directory: current runc (and asyncinit)
  pass the directory's mode as ``mode=``, runc 1.1.5 chmods after mounting; the
  mode the container sees is compared separately with ``stat``;
* directory masks (maskedPaths): asyncinit's tmpfs carries ``size=4k,nr_inodes=1``;
* a rootfs on a nosuid/nodev/noexec mount (a tmpfs /tmp): asyncinit's read-only
  root keeps those flags, runc 1.1.5's read-only remount (MS_RDONLY alone) drops them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from asyncinit import spawn
from asyncinit.config import ConfigError
from tests.support.cgroups import remove_runc_cgroup
from tests.support.containers import MakeConfig, needs_root, run
from tests.support.host import mount_of, mountinfo_root
from tests.support.runc import RUNC, needs_runc, runc_run

pytestmark = [
    pytest.mark.integration,
    pytest.mark.anyio,
    needs_root,
    needs_runc,
    # One caller loop is enough: runc is the slow half of each comparison.
    pytest.mark.caller_loop("asyncio"),
]

SEPARATOR = "--- stat"


def script(tmpfs_points: list[str]) -> list[str]:
    stat = f"stat -c '%n %a %u %g' {' '.join(tmpfs_points)}" if tmpfs_points else "true"
    return ["sh", "-c", f"cat /proc/self/mountinfo; echo '{SEPARATOR}'; {stat}"]


def normalize(output: str, config: dict[str, Any]) -> tuple[list[tuple[str, ...]], list[str]]:
    """(mount table rows in order, stat lines), runtime-specific noise removed."""
    rootfs = mountinfo_root(config["root"]["path"])
    host_flags = mount_of(config["root"]["path"]).options.split(",")
    kept_by_us = {"nosuid", "nodev", "noexec"} & set(host_flags)
    table, _, stats = output.partition(SEPARATOR + "\n")
    rows = [line.split() for line in table.splitlines()]
    points = {fields[0]: fields[4] for fields in rows}
    with_mode = {
        os.path.normpath(m["destination"])
        for m in config["mounts"]
        if any(o.startswith("mode=") for o in m.get("options", ()))
    }
    masked = set(config["linux"].get("maskedPaths", ()))
    normalized = []
    for fields in rows:
        separator = fields.index("-")
        _, parent, devno, root, point, options = fields[:6]
        fstype, source, super_options = fields[separator + 1 : separator + 4]
        optional = sorted(re.sub(r":\d+$", "", field) for field in fields[6:separator])
        if root == rootfs or root.startswith(rootfs + "/"):
            root = "<rootfs>" + root[len(rootfs) :]
        if point == "/":
            options = ",".join(o for o in options.split(",") if o not in kept_by_us)
        if devno.startswith("0:"):
            devno = "anonymous"
        if fstype == "cgroup":
            root = "<own cgroup>"
        if point == "/sys/fs/cgroup" and fstype == "tmpfs":
            options = options.replace("ro,", "rw,", 1)
        if fstype == "tmpfs":
            kept = super_options.split(",")
            if point not in with_mode:
                kept = [o for o in kept if not o.startswith("mode=")]
            if point in masked:
                kept = [o for o in kept if o.split("=")[0] not in ("size", "nr_inodes")]
            super_options = ",".join(kept)
        normalized.append(
            (
                points.get(parent, "<outside>"),
                devno,
                root,
                point,
                options,
                *optional,
                fstype,
                source,
                super_options,
            )
        )
    return normalized, stats.splitlines()


async def compare(
    bundle: Path,
    runc_bundle: Path,
    config: dict[str, Any],
    tmpfs_points: list[str],
    *,
    no_pivot: bool = False,
) -> None:
    config["process"]["args"] = script(tmpfs_points)
    runc_config = json.loads(json.dumps(config))
    runc_config["root"]["path"] = str(runc_bundle / "rootfs")
    expected = normalize(runc_run(runc_bundle, runc_config, no_pivot=no_pivot), runc_config)
    code, out, err = await run(config, no_pivot_root=no_pivot)
    assert code == 0, err
    got = normalize(out, config)
    assert got[0] == expected[0]
    assert got[1] == expected[1]


@pytest.fixture
def runc_bundle(tmp_path_factory: pytest.TempPathFactory, busybox_image: Path) -> Path:
    """A second, identical bundle: each runtime creates mount points in its own copy."""
    bundle = tmp_path_factory.mktemp("runc-bundle")
    shutil.copytree(busybox_image, bundle / "rootfs", symlinks=True)
    return bundle


@pytest.mark.parametrize("no_pivot", [False, True], ids=["pivot_root", "no-pivot"])
async def test_runc_default_config(
    make_config: MakeConfig, bundle: Path, runc_bundle: Path, no_pivot: bool
) -> None:
    await compare(bundle, runc_bundle, make_config(), [], no_pivot=no_pivot)


def prepare_images(*bundles: Path) -> None:
    for bundle in bundles:
        rootfs = bundle / "rootfs"
        (rootfs / "opt" / "keep" / "sub").mkdir(parents=True)
        (rootfs / "opt" / "keep" / "file").write_text("kept\n")
        os.chown(rootfs / "opt" / "keep" / "file", 1000, 1001)
        (rootfs / "opt" / "keep" / "link").symlink_to("file")
        os.chmod(rootfs / "opt", 0o750)
        (rootfs / "srv").mkdir(exist_ok=True)
        os.chmod(rootfs / "srv", 0o1711)


@pytest.mark.parametrize("no_pivot", [False, True], ids=["pivot_root", "no-pivot"])
async def test_runc_binds_tmpfs_propagation_and_rro(
    make_config: MakeConfig,
    bundle: Path,
    runc_bundle: Path,
    tmp_path_factory: pytest.TempPathFactory,
    no_pivot: bool,
) -> None:
    prepare_images(bundle, runc_bundle)
    host = tmp_path_factory.mktemp("host-source")
    (host / "dir").mkdir()
    (host / "file.txt").write_text("hello\n")
    config = make_config()
    config["mounts"] += [
        {
            "destination": "/data",
            "type": "bind",
            "source": str(host),
            "options": ["rbind", "ro", "nosuid", "rslave"],
        },
        {
            "destination": "/etc/file.txt",
            "type": "bind",
            "source": str(host / "file.txt"),
            "options": ["bind", "noexec", "nodev"],
        },
        {"destination": "/data2", "source": str(host), "options": ["rbind", "rro", "private"]},
        {
            "destination": "/data3",
            "type": "none",
            "source": str(host / "dir"),
            "options": ["bind", "rw", "strictatime"],
        },
        {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]},
        {"destination": "/opt", "type": "tmpfs", "source": "tmpfs", "options": ["tmpcopyup"]},
        {"destination": "/srv", "type": "tmpfs", "source": "tmpfs", "options": ["nodev"]},
        {"destination": "/new/dir", "type": "tmpfs", "source": "tmpfs", "options": ["noexec"]},
        {
            "destination": "/shared",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["mode=700", "shared"],
        },
        {"destination": "/unb", "type": "tmpfs", "source": "tmpfs", "options": ["runbindable"]},
        {"destination": "/ro", "type": "tmpfs", "source": "tmpfs", "options": ["ro", "mode=555"]},
    ]
    tmpfs_points = ["/tmp", "/opt", "/opt/keep/file", "/srv", "/new/dir", "/shared", "/ro"]
    await compare(bundle, runc_bundle, config, tmpfs_points, no_pivot=no_pivot)


# --- ids: what runc refuses, asyncinit refuses before anything starts, naming the field ---

USERNS_MAP = [{"containerID": 0, "hostID": 100000, "size": 65536}]


def _userns(config: dict[str, Any], mapping: list[dict[str, int]] = USERNS_MAP) -> None:
    """A user namespace with ``mapping`` (no sysfs/cgroup mounts: a userns cannot make them
    without owning the network namespace runc joins them from)."""
    config["linux"]["namespaces"].append({"type": "user"})
    config["linux"]["uidMappings"] = mapping
    config["linux"]["gidMappings"] = mapping
    config["mounts"] = [m for m in config["mounts"] if m["type"] not in ("sysfs", "cgroup")]


def _user(**fields: object) -> Callable[[dict[str, Any]], None]:
    return lambda config: config["process"]["user"].update(fields)


def _one_id_map(config: dict[str, Any]) -> None:
    _userns(config, [{"containerID": 0, "hostID": 100000, "size": 1}])
    config["mounts"][2]["options"].remove("gid=5")


def _unmapped(field: str, value: object) -> Callable[[dict[str, Any]], None]:
    def edit(config: dict[str, Any]) -> None:
        _one_id_map(config)
        config["process"]["user"][field] = value

    return edit


def _devpts_gid_unmapped(config: dict[str, Any]) -> None:
    _userns(config, [{"containerID": 0, "hostID": 100000, "size": 1}])


def _uid_map(*entries: dict[str, int]) -> Callable[[dict[str, Any]], None]:
    def edit(config: dict[str, Any]) -> None:
        _userns(config)
        config["linux"]["uidMappings"] = list(entries)

    return edit


REFUSED_IDS = [
    ("uid-minus-one", _user(uid=4294967295), "process.user.uid"),
    ("uid-past-int32", _user(uid=2147483648), "process.user.uid"),
    ("gid-minus-one", _user(uid=1000, gid=4294967295), "process.user.gid"),
    ("gid-past-int32", _user(gid=2147483648), "process.user.gid"),
    ("extra-gid-minus-one", _user(additionalGids=[4294967295]), "process.user.additionalGids[0]"),
    ("extra-gid-past-int32", _user(additionalGids=[2147483648]), "process.user.additionalGids[0]"),
    ("uid-unmapped", _unmapped("uid", 5), "process.user.uid"),
    ("extra-gid-unmapped", _unmapped("additionalGids", [7]), "process.user.additionalGids[0]"),
    ("devpts-gid-unmapped", _devpts_gid_unmapped, "mounts[2].options[5]"),
    (
        "map-minus-one",
        _uid_map({"containerID": 4294967295, "hostID": 100000, "size": 1}),
        "linux.uidMappings[0].containerID",
    ),
    (
        "map-overlap",
        _uid_map(
            {"containerID": 0, "hostID": 100000, "size": 10},
            {"containerID": 5, "hostID": 200000, "size": 10},
        ),
        "linux.uidMappings[1]",
    ),
]


@pytest.mark.parametrize(
    ("edit", "field"),
    [case[1:] for case in REFUSED_IDS],
    ids=[case[0] for case in REFUSED_IDS],
)
async def test_ids_runc_refuses_are_refused_naming_the_field(
    make_config: MakeConfig,
    runc_bundle: Path,
    edit: Callable[[dict[str, Any]], None],
    field: str,
) -> None:
    assert RUNC is not None
    config = make_config("id")
    edit(config)
    runc_config = json.loads(json.dumps(config))
    runc_config["root"]["path"] = str(runc_bundle / "rootfs")
    (runc_bundle / "config.json").write_text(json.dumps(runc_config))
    name = f"ids-{uuid.uuid4().hex[:8]}"
    try:
        result = subprocess.run(
            [RUNC, "run", "--bundle", str(runc_bundle), name],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    finally:
        subprocess.run([RUNC, "delete", "--force", name], capture_output=True, check=False)
        remove_runc_cgroup(name, runc_config["linux"].get("cgroupsPath"))
    assert result.returncode != 0, f"runc ran it: {result.stdout}"
    try:
        container = await spawn(config)
    except ConfigError as exc:
        assert [error.split(":")[0] for error in exc.errors] == [field]  # noqa: PT017
    else:
        async with container:
            await container.wait()
        pytest.fail("asyncinit ran what runc refuses")


async def test_the_largest_id_runs_as_under_runc(
    make_config: MakeConfig, runc_bundle: Path
) -> None:
    config = make_config("id")
    config["process"]["user"] = {"uid": 2147483647, "gid": 2147483647, "additionalGids": [7]}
    runc_config = json.loads(json.dumps(config))
    runc_config["root"]["path"] = str(runc_bundle / "rootfs")
    expected = runc_run(runc_bundle, runc_config)
    code, out, err = await run(config)
    assert (code, out) == (0, expected), err
    assert out == "uid=2147483647 gid=2147483647 groups=7\n"
