"""The ``cgroup`` mount's fallback on a unified host, as runc's mountCgroupV2 does it.

runc spec --rootless's config binds the host's /sys (``rbind``), so /sys/fs/cgroup
already holds the host's cgroup2 mount.  A container whose cgroup namespace is
rooted at that mount's root (its caller sits in the root cgroup: a guest or a
container without systemd) gets EBUSY for a fresh cgroup2 mount there.  runc then
binds the container's own cgroup (emulating the namespace), not the whole
hierarchy, and, rootless without a delegated cgroup (never created), masks
/sys/fs/cgroup with an empty read-only tmpfs.  This host (hybrid) is made unified
in a private mount namespace, its cgroup2 bound on /sys/fs/cgroup; the guest of
tests/vm/run is unified already.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from asyncinit.config import default_spec_dict
from tests.support import CHECKOUT, TIMEOUT_SCALE
from tests.support.containers import needs_root
from tests.support.host import cgroup2_mount, cgroup_layout, mount_of
from tests.support.hostile import give_to, spawn_as, unused_uid

pytestmark = [pytest.mark.integration, needs_root, pytest.mark.public_bundle]

_SEPARATOR = "=====\n"
_REPORT = f"cat /proc/self/mountinfo; printf '{_SEPARATOR}'; ls -F /sys/fs/cgroup"


def _unify() -> str:
    """Shell making the host unified in the current (private) mount namespace.

    Skips unless the fresh mount would meet EBUSY: this process in the root cgroup
    of the cgroup2 hierarchy (then so is a container's namespace, rooted at the
    cgroup it is forked in)."""
    layout, hierarchy = cgroup_layout(), cgroup2_mount()
    if layout not in ("v2", "hybrid") or hierarchy is None:
        pytest.skip(f"the host mounts no cgroup2 hierarchy (cgroup layout: {layout})")
    point = hierarchy[0]
    with open("/proc/self/cgroup") as f:
        own = next(line.rstrip("\n").split(":", 2)[2] for line in f if line.startswith("0::"))
    if own != mount_of(point).root:
        pytest.skip(f"this process sits in cgroup {own}, not the hierarchy's root: no EBUSY")
    if layout == "v2":
        return ""
    return (
        f"d=$(mktemp -d) && mount --bind {point} $d && umount -l /sys/fs/cgroup && "
        "mount --move $d /sys/fs/cgroup && rmdir $d && "
    )


def _rootless_config(bundle: Path) -> dict[str, Any]:
    config = default_spec_dict(rootless=True)
    if {"type": "cgroup"} not in config["linux"]["namespaces"]:  # runc adds it on v2 hosts
        config["linux"]["namespaces"].append({"type": "cgroup"})
    config["process"]["terminal"] = False
    config["process"]["args"] = ["sh", "-c", _REPORT]
    config["root"]["path"] = str(bundle / "rootfs")
    return config


def _cgroup_mount(out: str) -> tuple[str, set[str], list[str]]:
    """(fstype, mount options, entries listed) of the container's /sys/fs/cgroup."""
    mountinfo, listing = out.split(_SEPARATOR)
    top = [line.split() for line in mountinfo.splitlines() if line.split()[4] == "/sys/fs/cgroup"]
    fields = top[-1]
    fstype = fields[fields.index("-") + 1]
    return fstype, set(fields[5].split(",")), listing.split()


def test_root_gets_its_own_cgroup_bound_not_the_hierarchy(bundle: Path) -> None:
    """Before: the whole hierarchy was bound, every host cgroup in sight (read-only)."""
    unify = _unify()
    config = _rootless_config(bundle)
    (bundle / "config.json").write_text(json.dumps(config))
    shell = f'{unify}exec "$0" -m asyncinit run --bundle {bundle} cgroup2-fallback'
    result = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", shell, sys.executable],
        capture_output=True,
        text=True,
        timeout=60 * TIMEOUT_SCALE,
        check=False,
        cwd=CHECKOUT,
    )
    assert result.returncode == 0, result.stderr
    fstype, options, listing = _cgroup_mount(result.stdout)
    assert fstype == "cgroup2"
    assert {"ro", "nosuid", "nodev", "noexec"} <= options
    assert "cgroup.procs" in listing
    # the container's own cgroup is a leaf: the hierarchy's root holds at least it
    assert not [entry for entry in listing if entry.endswith("/")], listing


def test_rootless_without_a_delegated_cgroup_masks_it(bundle: Path) -> None:
    """Its own cgroup could not be created: an empty read-only tmpfs, as runc's maskPath.
    Before: the host's whole hierarchy, read-only."""
    unify = _unify()
    uid = unused_uid()
    config = _rootless_config(bundle)
    config["linux"]["uidMappings"] = [{"containerID": 0, "hostID": uid, "size": 1}]
    config["linux"]["gidMappings"] = [{"containerID": 0, "hostID": uid, "size": 1}]
    give_to(bundle, uid)
    result = spawn_as(uid, bundle, config, setup=unify)
    assert result["code"] == 0, result
    fstype, options, listing = _cgroup_mount(result["out"])
    assert fstype == "tmpfs"
    assert "ro" in options
    assert listing == []
