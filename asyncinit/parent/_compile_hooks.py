"""Compiling hooks and commands: their plans, checks and the init's reply timeouts."""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from pathlib import Path

from .._fs._path import open_in_root
from .._plan import CommandPlan, MountPlan
from ..config import Command, Hook, Hooks

#: Seconds the init gives the parent to answer, beyond the parent-side hooks' own
#: timeouts: a parent stuck for longer (blocked event loop, SIGSTOP) fails the start.
REPLY_MARGIN = 30.0


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


def reply_timeouts(hooks: Hooks | None) -> dict[str, float | None]:
    """How long the init waits for each reply: the parent-side hooks' timeouts + a margin."""
    parent_side = (*hooks.prestart, *hooks.create_runtime) if hooks else ()
    hooks_done: float | None = REPLY_MARGIN
    for hook in parent_side:
        hooks_done = (
            None if hook.timeout is None or hooks_done is None else hooks_done + hook.timeout
        )
    # mount_fd: the parent only opens and idmaps a tree, no user code runs.
    return {"hooks_done": hooks_done, "run": REPLY_MARGIN, "mount_fd": REPLY_MARGIN}


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


def check_hooks(
    hooks: Hooks | None, rootfs: Path, mounts: Sequence[MountPlan], errors: list[str]
) -> None:
    """Every OCI hook's path must name an executable, where that hook will run."""
    for kind in (
        "prestart",
        "create_runtime",
        "create_container",
        "start_container",
        "poststart",
        "poststop",
    ):
        for index, hook in enumerate(getattr(hooks, kind) if hooks else ()):
            field = f"hooks.{_JSON_KIND.get(kind, kind)}[{index}]"
            if kind == "start_container":
                check_executable_in_root(rootfs, hook.path, field, mounts, errors)
            else:
                check_executable(hook.path, field, errors)
