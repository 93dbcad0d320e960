"""Conformance with ``runc run``: /dev, the mount table, masked and read-only paths.

The same bundle and config.json are run by asyncinit and by the system's runc;
the container reports ``ls -ln /dev``, its mountinfo and what it can read of
every masked path and write of every read-only path.  The reports must be
equal after removing what differs by design, each difference named below:

- dates in ``ls`` and mount ids/device numbers in mountinfo (they change per run);
- the root of cgroup mounts: runc puts each container in a cgroup of its own,
  asyncinit does not manage cgroups and shows the cgroup it was started in;
- the tmpfs at /sys/fs/cgroup (cgroup v1): runc leaves it read-write, ours is
  read-only (its content is binds of the hierarchies, read-only in both);
- "size=4k,nr_inodes=1" on the directory-mask tmpfs: current runc mounts it with
  nr_blocks=1,nr_inodes=1 as we do, Debian's runc 1.1.5 without;
- a rootfs on a nosuid/nodev/noexec mount (a tmpfs /tmp): our read-only root keeps
  those flags, runc 1.1.5's read-only remount (MS_RDONLY alone) drops them;
- /sys/fs/cgroup of the rootless config run by an unprivileged uid sitting in the
  root cgroup of a unified host (a guest without systemd): see
  ``runc_masks_the_cgroup_mount``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import anyio.to_thread
import pytest

from asyncinit.config import default_spec_dict
from tests.support.configs import base_config
from tests.support.containers import needs_root, run
from tests.support.host import cgroup_layout, mount_of
from tests.support.hostile import give_to, probe_paths_script, spawn_as, unused_uid
from tests.support.runc import needs_runc, run_runc

pytestmark = [
    pytest.mark.integration,
    pytest.mark.anyio,
    needs_root,
    needs_runc,
    pytest.mark.caller_loop("asyncio"),  # runc is the slow half of each comparison
    pytest.mark.public_bundle,  # runc and asyncinit both run it
]

_SEPARATOR = "=====\n"
_DATE = re.compile(r" [A-Z][a-z]{2} +\d+ +(\d\d:\d\d|\d{4}) ")
_MASK_TMPFS_EXTRA = {"size=4k", "nr_inodes=1"}


def report_config(config: dict[str, Any], bundle: Path) -> dict[str, Any]:
    linux = config["linux"]
    script = (
        f"ls -ln /dev; printf '{_SEPARATOR}'; cat /proc/self/mountinfo; printf '{_SEPARATOR}';"
        + probe_paths_script(linux["maskedPaths"], linux["readonlyPaths"])
    )
    config["process"]["terminal"] = False
    config["process"]["args"] = ["sh", "-c", script]
    config["root"]["path"] = str(bundle / "rootfs")
    config["linux"].pop("resources", None)
    return config


def normalize_ls(text: str) -> list[str]:
    return [_DATE.sub(" ", line) for line in text.splitlines() if not line.startswith("total ")]


def normalize_mountinfo(text: str, kept_by_us: set[str]) -> list[tuple[str, ...]]:
    mounts = []
    for line in text.splitlines():
        fields = line.split()
        separator = fields.index("-")
        root, point, options = fields[3], fields[4], fields[5]
        fstype, source, super_options = fields[separator + 1 : separator + 4]
        if point == "/":
            options = ",".join(o for o in options.split(",") if o not in kept_by_us)
        if fstype in ("cgroup", "cgroup2"):
            root = "<own cgroup>"
        if fstype == "tmpfs" and point == "/sys/fs/cgroup":
            options = re.sub(r"^r[ow],", "", options)
        if fstype == "tmpfs" and super_options.startswith("ro,"):
            super_options = ",".join(
                o for o in super_options.split(",") if o not in _MASK_TMPFS_EXTRA
            )
        mounts.append((point, root, options, fstype, source, super_options))
    return sorted(mounts)


def parse_report(
    out: str, kept_by_us: set[str]
) -> tuple[list[str], list[tuple[str, ...]], list[str]]:
    dev, mountinfo, paths = out.split(_SEPARATOR)
    return normalize_ls(dev), normalize_mountinfo(mountinfo, kept_by_us), paths.splitlines()


def assert_same_container(ours: str, theirs: str, config: dict[str, Any]) -> None:
    host_flags = set(mount_of(config["root"]["path"]).options.split(","))
    kept_by_us = {"nosuid", "nodev", "noexec"} & host_flags
    our_dev, our_mounts, our_paths = parse_report(ours, kept_by_us)
    runc_dev, runc_mounts, runc_paths = parse_report(theirs, kept_by_us)
    assert our_dev == runc_dev
    assert our_mounts == runc_mounts
    assert our_paths == runc_paths
    # and what they agree on is protected: nothing masked readable, nothing writable
    for line in our_paths:
        path, rest = line.split(" ", 1)
        if path in config["linux"]["maskedPaths"]:
            assert rest in ("absent", "dir 0", "file 0"), line
        else:
            assert rest.startswith("ro ") or rest == "unmounted absent", line


def runc_masks_the_cgroup_mount() -> bool:
    """Whether rootless runc shows an empty read-only tmpfs at /sys/fs/cgroup where we
    show the cgroup2 hierarchy the config asks for (read-only).

    The rootless config binds the host's /sys (``rbind``), so /sys/fs/cgroup already
    holds the host's cgroup2 mount.  A caller in the root cgroup of that mount (no
    systemd to put it in a session scope) gets a cgroup namespace rooted there, and the
    kernel refuses the fresh cgroup2 mount with EBUSY (the same root of the same
    filesystem on the same mount point).  runc then binds "its" cgroup, which a rootless
    runc could not create (ENOENT), and masks the path (rootfs_linux.go mountCgroupV2,
    unchanged in current runc).  We bind the hierarchy that is already there, which is
    what the fresh mount would have shown (crun 1.8.1 stacks an empty tmpfs and mounts
    cgroup2 afresh on it: the same directories): runc users get that on every host
    where the caller is not in the root cgroup.
    """
    if cgroup_layout() != "v2":
        return False
    with open("/proc/self/cgroup") as f:
        own = next(line.rstrip("\n").split(":", 2)[2] for line in f if line.startswith("0::"))
    return own == mount_of("/sys/fs/cgroup").root


def pop_top_mount(report: str, point: str) -> tuple[str, tuple[str, ...]]:
    """``report`` without the last mount at ``point`` (the one on top), and that mount
    as (root, options, fstype, super options)."""
    dev, mountinfo, paths = report.split(_SEPARATOR)
    lines = mountinfo.splitlines()
    index = max(i for i, line in enumerate(lines) if line.split()[4] == point)
    fields = lines.pop(index).split()
    separator = fields.index("-")
    top = (fields[3], fields[5], fields[separator + 1], fields[separator + 3])
    rest = "".join(line + "\n" for line in lines)
    return _SEPARATOR.join((dev, rest, paths)), top


async def test_runc_default_config(bundle: Path) -> None:
    config = report_config(base_config(), bundle)
    code, ours, err = await run(config)
    assert code == 0, err
    runc_code, theirs, runc_err = await anyio.to_thread.run_sync(
        run_runc, bundle, config, bundle / "state"
    )
    assert runc_code == 0, runc_err
    assert_same_container(ours, theirs, config)


async def test_runc_rootless_config_run_by_root(bundle: Path) -> None:
    config = report_config(default_spec_dict(rootless=True), bundle)
    code, ours, err = await run(config)
    assert code == 0, err
    runc_code, theirs, runc_err = await anyio.to_thread.run_sync(
        run_runc, bundle, config, bundle / "state"
    )
    assert runc_code == 0, runc_err
    assert_same_container(ours, theirs, config)


async def test_runc_rootless_config_run_by_an_unprivileged_uid(bundle: Path) -> None:
    uid = unused_uid()
    config = report_config(default_spec_dict(rootless=True), bundle)
    config["linux"]["uidMappings"] = [{"containerID": 0, "hostID": uid, "size": 1}]
    config["linux"]["gidMappings"] = [{"containerID": 0, "hostID": uid, "size": 1}]
    (bundle / "state").mkdir()
    give_to(bundle, uid)
    result = await anyio.to_thread.run_sync(spawn_as, uid, bundle, config)
    assert result["code"] == 0, result
    runc_code, theirs, runc_err = await anyio.to_thread.run_sync(
        lambda: run_runc(bundle, config, bundle / "state", uid=uid)
    )
    assert runc_code == 0, runc_err
    ours = result["out"]
    if runc_masks_the_cgroup_mount():
        ours, our_cgroup = pop_top_mount(ours, "/sys/fs/cgroup")
        theirs, runc_cgroup = pop_top_mount(theirs, "/sys/fs/cgroup")
        # ours: the hierarchy from the cgroup namespace's root down, read-only
        assert our_cgroup[:3:2] == ("/", "cgroup2"), our_cgroup
        assert "ro" in our_cgroup[1].split(","), our_cgroup
        # runc's: the read-only tmpfs of its maskPath
        assert runc_cgroup[2] == "tmpfs", runc_cgroup
        assert "ro" in runc_cgroup[3].split(","), runc_cgroup
    assert_same_container(ours, theirs, config)
    assert os.stat(bundle / "rootfs").st_uid == uid
