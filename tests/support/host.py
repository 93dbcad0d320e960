"""The host as tests see it: its mount table, its cgroup layout, directory modes, its processes."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple


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


def mount_table() -> list[str]:
    """The host's mount table without mount ids, which the kernel may reuse."""
    with open("/proc/self/mountinfo") as f:
        return [line.split(" ", 2)[2] for line in f]


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


def traversable_by_everyone(path: Path) -> None:
    """pytest's tmp dirs are 0700: a mapped root (host uid 100000) could not reach the rootfs."""
    for directory in (path, *path.parents):
        if directory == Path("/"):
            break
        os.chmod(directory, os.stat(directory).st_mode | 0o011)


def process_stats() -> Iterator[tuple[int, list[str]]]:
    """Each process's pid and the fields of /proc/PID/stat after its name (state,
    ppid, pgrp, session...); a process gone meanwhile is passed over."""
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            yield int(entry), fields


def thread_children(pid: int) -> list[int]:
    """The children of every thread of ``pid`` (/proc/PID/task/TID/children)."""
    children: list[int] = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as f:
            children += [int(child) for child in f.read().split()]
    return children


def processes_in_pid_namespace(namespace: str) -> list[int]:
    """The processes whose /proc/PID/ns/pid link reads ``namespace``."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.readlink(f"/proc/{entry}/ns/pid") == namespace:
                    found.append(int(entry))
            except OSError:
                continue
    return found
