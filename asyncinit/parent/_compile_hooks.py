"""Compiling hooks and commands: their plans, host checks, and every timeout of a start.

All six OCI hook points are compiled here: createContainer and startContainer
into the init's plan, the four the parent runs into :class:`ParentHooks`, each
with spawn()'s Python hooks beside config.json's.  The timeouts that follow from
them are computed here too, once: how long the init waits for each reply of the
parent (:func:`reply_timeouts`) and how long a failed start may take to clean
up (:func:`cleanup_timeout`).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from pathlib import Path

import attrs

from .._fs._path import open_in_root
from .._plan import CommandPlan, MountPlan
from ..config import Command, Hook, Hooks
from ._hooks import HookPoint, ParentHooks, PythonHooks

#: Seconds the init gives the parent to answer, beyond the parent-side hooks' own
#: timeouts: a parent stuck for longer (blocked event loop, SIGSTOP) fails the start.
REPLY_MARGIN = 30.0
#: How long cleanup waits for a killed init to be reaped before giving up on it
#: (plus each poststop hook's timeout, this much for a hook without one).
REAP_TIMEOUT = 10.0
#: Default bound on each Python hook, so a stuck hook cannot hang spawn() for ever.
DEFAULT_HOOK_TIMEOUT = 60.0


def command_plan(hook: Hook, field: str) -> CommandPlan:
    return {
        "path": hook.path,
        "args": list(hook.args) or [hook.path],
        "env": list(hook.env),
        "dir": hook.dir if isinstance(hook, Command) else None,
        "timeout": float(hook.timeout) if hook.timeout is not None else None,
        "field": field,
    }


def check_executable_in_root(
    rootfs: Path, path: str, field: str, mounts: Sequence[MountPlan], errors: list[str]
) -> None:
    """A startContainer hook runs after pivot_root: its path resolves in the container.

    Resolved with RESOLVE_IN_ROOT so a symlink in the image cannot point the check
    at a host file.  A path under a mount destination may only appear once that
    mount is made: the init reports it then if it is missing.
    """
    if any(
        path == m["destination"] or path.startswith(m["destination"].rstrip("/") + "/")
        for m in mounts
    ):
        return
    try:
        rootfd = os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return  # root.path is reported on its own
    try:
        fd = open_in_root(rootfd, path, os.O_PATH | os.O_CLOEXEC)
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        errors.append(f"{field}.path: {path}: {reason} in the container's rootfs")
        return
    finally:
        os.close(rootfd)
    try:
        info = os.fstat(fd)
    finally:
        os.close(fd)
    if not stat.S_ISREG(info.st_mode) or not info.st_mode & 0o111:
        errors.append(f"{field}.path: {path}: not an executable file in the container's rootfs")


def _plans(hooks: Sequence[Hook], kind: str) -> list[CommandPlan]:
    return [command_plan(hook, f"hooks.{kind}[{i}]") for i, hook in enumerate(hooks)]


@attrs.frozen
class CompiledHooks:
    """The six hook points: four for the parent, two for the init's plan."""

    parent: ParentHooks
    #: run by the init in the container's namespaces, before pivot_root
    create_container: list[CommandPlan]
    #: run by the init after the jail, with the workload's credentials
    start_container: list[CommandPlan]


def compile_hooks(hooks: Hooks, python: PythonHooks, hook_timeout: float | None) -> CompiledHooks:
    """config.json's hooks as plans, with spawn()'s Python hooks at the parent's points."""
    return CompiledHooks(
        parent=ParentHooks(
            prestart=HookPoint("prestart", tuple(_plans(hooks.prestart, "prestart"))),
            create_runtime=HookPoint(
                "createRuntime",
                tuple(_plans(hooks.create_runtime, "createRuntime")),
                tuple(python.create_runtime),
                hook_timeout,
            ),
            poststart=HookPoint(
                "poststart",
                tuple(_plans(hooks.poststart, "poststart")),
                tuple(python.poststart),
                hook_timeout,
            ),
            poststop=HookPoint(
                "poststop",
                tuple(_plans(hooks.poststop, "poststop")),
                tuple(python.poststop),
                hook_timeout,
            ),
        ),
        create_container=_plans(hooks.create_container, "createContainer"),
        start_container=_plans(hooks.start_container, "startContainer"),
    )


def _before_pivot(hooks: ParentHooks) -> tuple[HookPoint, HookPoint]:
    """The points the parent runs while the init waits at ``hooks`` (runc's procHooks)."""
    return hooks.prestart, hooks.create_runtime


def has_hooks_before_pivot(hooks: ParentHooks) -> bool:
    """Whether the parent has prestart or createRuntime hooks (OCI or Python) to run."""
    return any(point.commands or point.python for point in _before_pivot(hooks))


def reply_timeouts(hooks: ParentHooks) -> dict[str, float | None]:
    """How long the init waits for each reply: the parent-side hooks' timeouts + a margin."""
    hooks_done: float | None = REPLY_MARGIN
    points = _before_pivot(hooks)
    for point in points:
        for command in point.commands:
            timeout = command["timeout"]
            hooks_done = None if timeout is None or hooks_done is None else hooks_done + timeout
    for point in points:
        if point.python and hooks_done is not None:
            hooks_done = (
                None
                if point.python_timeout is None
                else hooks_done + point.python_timeout * len(point.python)
            )
    # mount_fd: the parent only opens and idmaps a tree, no user code runs.
    # cgroup: the parent moves one process (an RCU grace period, a few retries at most).
    return {
        "hooks_done": hooks_done,
        "run": REPLY_MARGIN,
        "mount_fd": REPLY_MARGIN,
        "cgroup": REPLY_MARGIN,
    }


def cleanup_timeout(hooks: ParentHooks) -> float:
    """How long a failed start may take to clean up: reap PID 1, then run poststop hooks."""
    poststop = hooks.poststop
    budget = REAP_TIMEOUT
    for command in poststop.commands:
        budget += command["timeout"] or REAP_TIMEOUT
    return budget + len(poststop.python) * (poststop.python_timeout or REAP_TIMEOUT)


def check_executable(path: str, field: str, errors: list[str]) -> None:
    try:
        info = os.stat(path)
    except OSError as exc:
        errors.append(f"{field}.path: {path}: {exc.strerror}")
        return
    if not stat.S_ISREG(info.st_mode) or not os.access(path, os.X_OK):
        errors.append(f"{field}.path: {path}: not an executable file")


_JSON_KIND = {
    "create_runtime": "createRuntime",
    "create_container": "createContainer",
    "start_container": "startContainer",
}


def check_hooks(hooks: Hooks, rootfs: Path, mounts: Sequence[MountPlan], errors: list[str]) -> None:
    """Every OCI hook's path must name an executable, where that hook will run."""
    for kind in (
        "prestart",
        "create_runtime",
        "create_container",
        "start_container",
        "poststart",
        "poststop",
    ):
        for index, hook in enumerate(getattr(hooks, kind)):
            field = f"hooks.{_JSON_KIND.get(kind, kind)}[{index}]"
            if kind == "start_container":
                check_executable_in_root(rootfs, hook.path, field, mounts, errors)
            else:
                check_executable(hook.path, field, errors)
