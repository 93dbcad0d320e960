"""Shared fixtures: a busybox rootfs, runc's default config, host-leak checks."""

from __future__ import annotations

import copy
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from asyncinit._demo import build_busybox_rootfs, busybox_is_static
from asyncinit.cgroups import detect_host
from asyncinit.config import default_spec_dict

from .cgrouputil import cgroup_dirs

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="starts real containers: needs root")


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def busybox_image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A pristine busybox-static rootfs, built once per test session."""
    if not busybox_is_static():
        pytest.skip("busybox-static is not installed (apt-get install busybox-static)")
    image = tmp_path_factory.mktemp("image") / "rootfs"
    build_busybox_rootfs(image)
    return image


@pytest.fixture
def bundle(tmp_path: Path, busybox_image: Path) -> Path:
    """A bundle directory with a private copy of the rootfs (tests may change it)."""
    shutil.copytree(busybox_image, tmp_path / "rootfs", symlinks=True)
    return tmp_path


def base_config(*args: str) -> dict[str, Any]:
    """runc's default config (terminal off; its deny-all device rule kept) running ``args``."""
    config = copy.deepcopy(default_spec_dict())
    config["process"]["terminal"] = False
    config["process"]["args"] = list(args) or ["true"]
    return config


@pytest.fixture
def make_config(bundle: Path) -> Callable[..., dict[str, Any]]:
    def make(*args: str) -> dict[str, Any]:
        config = base_config(*args)
        config["root"]["path"] = str(bundle / "rootfs")
        return config

    return make


@pytest.fixture
def log(tmp_path: Path) -> Path:
    """A host directory every hook can write to; bind-mounted at /log in the container."""
    path = tmp_path / "log"
    path.mkdir()
    path.chmod(0o777)
    return path


class HostMount(NamedTuple):
    point: str
    root: str  # in its filesystem
    options: str  # per mount
    fstype: str
    super_options: str


def host_mounts() -> list[HostMount]:
    """This process's mount table, from /proc/self/mountinfo."""
    mounts = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            sep = fields.index("-")
            mounts.append(
                HostMount(fields[4], fields[3], fields[5], fields[sep + 1], fields[sep + 3])
            )
    return mounts


def mount_of(path: Path | str) -> HostMount:
    """The host mount ``path`` lives on."""
    real = os.path.realpath(path)
    return max(
        (m for m in host_mounts() if real == m.point or real.startswith(m.point.rstrip("/") + "/")),
        key=lambda m: len(m.point),
    )


def mountinfo_root(path: Path | str) -> str:
    """How mountinfo's root field names ``path``: relative to the filesystem it is on
    (``/pytest-of-root/...`` where /tmp is a tmpfs of its own)."""
    mount = mount_of(path)
    rest = os.path.realpath(path)[len(mount.point.rstrip("/")) :]
    return mount.root.rstrip("/") + rest or "/"


def cgroup_layout() -> str:
    """What this host mounts: "v2" (cgroup2 alone on /sys/fs/cgroup, as systemd's
    unified mode), "hybrid" (v1 controllers, cgroup2 beside them), "v1" or "none"."""
    points = {(m.point, m.fstype) for m in host_mounts()}
    if ("/sys/fs/cgroup", "cgroup2") in points:
        return "v2"
    v1 = any(fstype == "cgroup" for _, fstype in points)
    if v1:
        return "hybrid" if any(fstype == "cgroup2" for _, fstype in points) else "v1"
    return "none"


def cgroup2_mount() -> tuple[str, str] | None:
    """(mount point, super options) of the host's cgroup2 hierarchy, if it is mounted:
    the options (nsdelegate, memory_recursiveprot...) are the whole hierarchy's."""
    for m in host_mounts():
        if m.fstype == "cgroup2" and m.root == "/":
            return m.point, m.super_options
    return None


def _mount_table() -> list[str]:
    """The host's mount table without mount ids, which the kernel may reuse."""
    with open("/proc/self/mountinfo") as f:
        return [line.split(" ", 2)[2] for line in f]


def _descendants() -> set[int]:
    children: set[int] = set()
    me = str(os.getpid())
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = f.read().rsplit(")", 1)[1].split()[1]
            except OSError:
                continue
            if ppid == me:
                children.add(int(entry))
    return children


@pytest.fixture(autouse=True, scope="session")
def no_system_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """`asyncinit run` in tests talks to the daemon a test starts, never to a machine-wide one."""
    old = os.environ.get("ASYNCINIT_SOCKET")
    os.environ["ASYNCINIT_SOCKET"] = str(tmp_path_factory.mktemp("no-daemon") / "none.sock")
    yield
    if old is None:
        del os.environ["ASYNCINIT_SOCKET"]
    else:
        os.environ["ASYNCINIT_SOCKET"] = old


@pytest.fixture(autouse=True)
def host_unchanged(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every integration test leaves the host's mount table and cgroup trees as it found them."""
    if request.node.get_closest_marker("integration") is None:
        yield
        return
    host = detect_host()
    # The engines' tests share cgroups with their engine, whose own fixture removes them.
    check_cgroups = request.node.path.parent.name != "engines"
    before, cgroups_before = _mount_table(), cgroup_dirs(host) if check_cgroups else set()
    yield
    assert _mount_table() == before, "the host's mount table changed"
    cgroups_after = cgroup_dirs(host) if check_cgroups else set()
    assert cgroups_after == cgroups_before, (
        f"cgroups left behind: {sorted(cgroups_after - cgroups_before)}; "
        f"gone: {sorted(cgroups_before - cgroups_after)}"
    )
