"""Compiling ``linux.namespaces``: what to create, what to join and in which order.

The fork server creates the namespaces without a ``path`` (``clone_flags``) and
joins the others from fds the caller opens (``join``), user namespace first so
that the rest are permitted, as runc does.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import attrs

from .._syscalls._process import (
    CLONE_NEWCGROUP,
    CLONE_NEWIPC,
    CLONE_NEWNET,
    CLONE_NEWNS,
    CLONE_NEWPID,
    CLONE_NEWTIME,
    CLONE_NEWUSER,
    CLONE_NEWUTS,
)
from ..cgroups._plan import CgroupEntry, CgroupPlan
from ..config import IDMapping, Linux, Namespace
from ..forkserver._wire import LaunchRequest

NAMESPACE_FLAGS = {
    "pid": CLONE_NEWPID,
    "network": CLONE_NEWNET,
    "mount": CLONE_NEWNS,
    "ipc": CLONE_NEWIPC,
    "uts": CLONE_NEWUTS,
    "user": CLONE_NEWUSER,
    "cgroup": CLONE_NEWCGROUP,
    "time": CLONE_NEWTIME,
}
#: The order runc joins existing namespaces in: user first, so the rest are permitted.
JOIN_ORDER = ("user", "ipc", "uts", "network", "pid", "cgroup", "mount", "time")
#: Present when the kernel has time namespaces (CONFIG_TIME_NS, Linux 5.6), as runc checks.
TIMENS_OFFSETS = "/proc/self/timens_offsets"


@attrs.frozen
class Namespaces:
    """The container's namespaces, created or joined."""

    #: each namespace entry by type
    by_type: dict[str, Namespace]
    #: CLONE_NEW* bits of the namespaces to create
    clone_flags: int
    #: (path, nstype) of each namespace joined by path, in runc's order
    join: tuple[tuple[str, int], ...]

    def has(self, kind: str) -> bool:
        return kind in self.by_type

    def creates(self, kind: str) -> bool:
        """A new namespace of this kind (not one joined by path)."""
        namespace = self.by_type.get(kind)
        return namespace is not None and not namespace.path


def compile_namespaces(linux: Linux, errors: list[str]) -> Namespaces:
    """The namespaces to create and to join; a missing namespace file is an error."""
    by_type = {ns.type: ns for ns in linux.namespaces}
    clone_flags = 0
    for kind, ns in by_type.items():
        if not ns.path:
            clone_flags |= NAMESPACE_FLAGS[kind]
    join = tuple(
        (joined.path, NAMESPACE_FLAGS[kind])
        for kind in JOIN_ORDER
        if (joined := by_type.get(kind)) is not None and joined.path
    )
    for path, _ in join:
        if not os.path.exists(path):
            errors.append(f"linux.namespaces: {path}: no such namespace file")
    if "time" in by_type and not os.path.exists(TIMENS_OFFSETS):
        errors.append("linux.namespaces: time namespaces are not enabled in this kernel")
    namespaces = Namespaces(by_type, clone_flags, join)
    if namespaces.creates("user") and os.geteuid() != 0:
        _check_rootless_mappings(linux.uid_mappings, linux.gid_mappings, errors)
    return namespaces


def _check_rootless_mappings(
    uid_mappings: Sequence[IDMapping], gid_mappings: Sequence[IDMapping], errors: list[str]
) -> None:
    """Without privileges the kernel accepts one map line: our own id, size 1.

    (runc would call newuidmap/newgidmap for more; asyncinit does not.)
    """
    for key, mappings, own in (
        ("uidMappings", uid_mappings, os.geteuid()),
        ("gidMappings", gid_mappings, os.getegid()),
    ):
        if len(mappings) != 1 or mappings[0].host_id != own or mappings[0].size != 1:
            errors.append(
                f"linux.{key}: without root only your own id ({own}) can be mapped, "
                "as a single entry of size 1"
            )


def id_map(mappings: Sequence[IDMapping]) -> str:
    """/proc/PID/uid_map (or gid_map) contents: "containerID hostID size" lines."""
    return "".join(f"{m.container_id} {m.host_id} {m.size}\n" for m in mappings)


def time_offsets(linux: Linux) -> str:
    """/proc/PID/timens_offsets contents: "clock secs nanosecs" lines; "" for none."""
    offsets = linux.time_offsets or {}
    return "".join(f"{clock} {o.secs} {o.nanosecs}\n" for clock, o in offsets.items())


def launch_request(
    namespaces: Namespaces,
    linux: Linux,
    oom_score_adj: int | None,
    backend: str,
    cgroup: CgroupPlan | None = None,
    cgroup_entry: CgroupEntry | None = None,
) -> LaunchRequest:
    """The fork server's ``launch`` fields (docs/protocol.md); the join fds travel beside."""
    user_ns = namespaces.has("user")
    return {
        "clone_flags": namespaces.clone_flags,
        "join": [flag for _, flag in namespaces.join],
        "uid_map": id_map(linux.uid_mappings) if user_ns else "",
        "gid_map": id_map(linux.gid_mappings) if user_ns else "",
        # Without CAP_SETGID in our own namespace the kernel wants setgroups denied.
        "deny_setgroups": user_ns and os.geteuid() != 0,
        # Set by the intermediate while it may: a non-dumpable init's /proc files
        # belong to the host's root, out of reach of a rootless init.
        "oom_score_adj": oom_score_adj,
        "time_offsets": time_offsets(linux),
        "backend": backend,
        "cgroup": cgroup,
        "born_in_cgroup": cgroup_entry == "clone",
        "join_cgroups": [h["directory"] for h in cgroup["hierarchies"]]
        if cgroup is not None and cgroup_entry == "join"
        else [],
    }
