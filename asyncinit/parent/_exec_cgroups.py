"""``exec``: the cgroups an exec'd process joins: the init's, or runc's ``--cgroup`` below them.

The init's cgroup in each hierarchy comes from /proc/PID/cgroup (read from our
cgroup namespace: host paths) and our mount table, v1 and v2 alike, so a
process exec'd into a container lands where its init is, wherever that was
moved.  ``runc exec --cgroup`` names an existing sub-cgroup of the container's
cgroup: one path for every hierarchy, or ``<controller>[,<controller>...]:<path>``
per v1 controller.  runc's messages; a path that leads out of the container's
cgroup (``..``) is refused, as by runc.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from .._errors import UsageError
from .._lines import show


def _cgroup_mounts() -> list[tuple[str, str, frozenset[str]]]:
    """(mount point, root in the hierarchy, options) of every cgroup mount; v2 has no options."""
    mounts = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            rest = fields[fields.index("-") + 1 :]
            if rest[0] == "cgroup":
                mounts.append((fields[4], fields[3], frozenset(rest[2].split(","))))
            elif rest[0] == "cgroup2":
                mounts.append((fields[4], fields[3], frozenset()))
    return mounts


def init_cgroups(pid: int) -> list[tuple[frozenset[str], str]]:
    """(controllers, host directory) of the init's cgroup in each hierarchy it belongs to.

    The controllers are /proc/PID/cgroup's (``name=systemd`` for a named v1
    hierarchy), empty for v2.  A hierarchy not mounted here is skipped, as runc
    skips it.
    """
    mounts = _cgroup_mounts()
    found = []
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            number, controllers, path = line.rstrip("\n").split(":", 2)
            wanted = frozenset(controllers.split(",")) if number != "0" else frozenset()
            for point, root, options in mounts:
                if (wanted and wanted <= options) or (not wanted and not options):
                    relative = os.path.relpath(path, root) if path != root else "."
                    if not relative.startswith(".."):
                        found.append((wanted, os.path.normpath(os.path.join(point, relative))))
                        break
    return found


def cgroup_directories(pid: int) -> list[str]:
    """The host directory of the init's cgroup in each hierarchy it belongs to."""
    return [directory for _, directory in init_cgroups(pid)]


def parse_sub_cgroups(values: Sequence[str]) -> dict[str, str]:
    """runc exec's ``--cgroup`` values as {controller: path}; "" for one path for all.

    runc's rules and messages: at most one ``:``; a value without a controller
    only when it is the only one.
    """
    paths: dict[str, str] = {}
    for value in values:
        parts = value.split(":", 2)
        if len(parts) > 2:
            raise UsageError(f"invalid --cgroup argument: {value}")
        if len(parts) == 1:
            if len(values) != 1:
                raise UsageError(
                    f"invalid --cgroup argument: {value} (missing <controller>: prefix)"
                )
            paths[""] = value
        else:
            for controller in parts[0].split(","):
                paths[controller] = parts[1]
    return paths


def _below(directory: str, sub: str) -> str:
    """``sub`` under ``directory``, refused if it leads out of it or does not exist."""
    joined = os.path.normpath(os.path.join(directory, sub.lstrip("/")))
    if joined != directory and not joined.startswith(directory + "/"):
        raise UsageError(f"unable to create new parent process: {sub} is not a sub cgroup path")
    if not os.path.isdir(joined):
        raise UsageError(f"--cgroup {show(sub)}: no cgroup {joined} (create it first)")
    return joined


def exec_cgroups(pid: int, sub: Mapping[str, str]) -> list[str]:
    """The directories the exec'd process joins: the init's, with ``sub`` applied."""
    found = init_cgroups(pid)
    if not sub:
        return [directory for _, directory in found]
    if "" in sub:
        return [_below(directory, sub[""]) for _, directory in found]
    chosen = {directory: directory for _, directory in found}
    for controller, path in sub.items():
        matches = [directory for controllers, directory in found if controller in controllers]
        if not matches:
            raise UsageError(
                f"unable to create new parent process: unknown controller {controller} "
                "in SubCgroupPaths"
            )
        chosen[matches[0]] = _below(matches[0], path)
    return list(chosen.values())
