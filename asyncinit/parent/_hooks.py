"""Parent-side hooks: the OCI hooks the runtime runs, and Python callables beside them.

prestart and createRuntime (OCI, then Python) run when the init asks, before
pivot_root; poststart after the workload was executed; poststop once PID 1 has
been reaped.  A failing prestart/createRuntime hook stops the start; poststart
and poststop failures are warnings, and the remaining hooks still run (OCI
runtime spec, "Lifecycle").  What runs at each point was compiled by
``compile_spec`` (:class:`ParentHooks`): this module only runs plans.
"""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

import anyio
import attrs

from .. import _publish
from .._commands import run_command
from .._errors import CommandError, HookError
from .._plan import CommandPlan
from ..config import Spec

if TYPE_CHECKING:
    from ._container import Container

__all__ = ["HookError", "HookPoint", "ParentHooks", "PythonHook", "PythonHooks", "oci_state"]

PythonHook = Callable[["Container"], Awaitable[None]]


@attrs.frozen
class PythonHooks:
    """Async callables run by the parent at the OCI hook points of the same name.

    Each gets the :class:`Container` (host ``pid``, ``namespace_path()``,
    ``bundle``, ``rootfs``, ``spec``, ``state()``).  createRuntime hooks run after
    the OCI createRuntime hooks, while the init waits before pivot_root: they can
    write into the rootfs, configure the container's network or prlimit its
    PID 1.  An exception (or running past spawn's ``hook_timeout``) stops the
    start exactly like a failing OCI hook.
    """

    create_runtime: Sequence[PythonHook] = ()
    poststart: Sequence[PythonHook] = ()
    poststop: Sequence[PythonHook] = ()


@attrs.frozen
class HookPoint:
    """What the parent runs at one hook point: config.json's hooks, then spawn()'s."""

    #: the OCI name of the point ("prestart", "createRuntime", "poststart", "poststop")
    kind: str
    #: the OCI hooks of config.json, compiled (each with its own timeout)
    commands: tuple[CommandPlan, ...] = ()
    python: tuple[PythonHook, ...] = ()
    #: bound on each Python hook (spawn's ``hook_timeout``); None: unbounded
    python_timeout: float | None = None


@attrs.frozen
class ParentHooks:
    """The four hook points the parent runs, compiled by compile_spec."""

    prestart: HookPoint
    create_runtime: HookPoint
    poststart: HookPoint
    poststop: HookPoint


#: The state's ``status`` at each hook point (as runc: "creating" until the jail,
#: "created" until the exec, then "running"; "stopped" once PID 1 is reaped).
STATUS = {
    "prestart": "creating",
    "createRuntime": "creating",
    "createContainer": "creating",
    "startContainer": "created",
    "poststart": "running",
    "poststop": "stopped",
}


def oci_state(spec: Spec, container_id: str, pid: int, bundle: str, status: str) -> dict[str, Any]:
    """The OCI state a hook reads on stdin; ``pid`` is PID 1 as the host sees it.

    No ``pid`` once stopped (as runc; the spec requires it only while created or
    running): the number may already name another process, and a poststop hook
    acting on it (nsenter, kill) would hit a stranger.
    """
    state: dict[str, Any] = {
        "ociVersion": spec.oci_version,
        "id": container_id,
        "status": status,
        "pid": pid,
        "bundle": bundle,
        "annotations": dict(spec.annotations),
    }
    if status == "stopped":
        del state["pid"]
    return state


async def _run_oci_hook(kind: str, index: int, command: CommandPlan, stdin: bytes) -> None:
    try:
        await run_command(command, stdin)
    except CommandError as exc:
        raise HookError.from_command(kind, index, exc.details()) from exc


async def _run_python_hook(
    kind: str, index: int, hook: PythonHook, container: Container, timeout: float | None
) -> None:
    name = getattr(hook, "__qualname__", None) or repr(hook)
    try:
        with anyio.move_on_after(math.inf if timeout is None else timeout) as scope:
            await hook(container)
    except Exception as exc:
        raise HookError(
            f"{kind} Python hook {index} ({name}) raised {type(exc).__name__}: {exc}",
            kind=kind,
            index=index,
            path=None,
        ) from exc
    if scope.cancelled_caught:
        raise HookError(
            f"{kind} Python hook {index} ({name}) timed out after {timeout:g}s",
            kind=kind,
            index=index,
            path=None,
            timed_out=True,
        )


async def run_hooks(point: HookPoint, container: Container) -> None:
    """prestart/createRuntime: the OCI hooks, then the Python ones; the first failure raises."""
    kind = point.kind
    stdin = json.dumps(container.state(STATUS[kind])).encode()
    for index, command in enumerate(point.commands):
        await _run_oci_hook(kind, index, command, stdin)
    for index, python_hook in enumerate(point.python):
        await _run_python_hook(kind, index, python_hook, container, point.python_timeout)


async def run_hooks_reporting(point: HookPoint, container: Container) -> list[str]:
    """poststart/poststop: run every hook, even after a failure; failures become warnings."""
    kind = point.kind
    warnings: list[str] = []
    stdin = json.dumps(container.state(STATUS[kind])).encode()
    for index, command in enumerate(point.commands):
        try:
            await _run_oci_hook(kind, index, command, stdin)
        except HookError as exc:
            warnings.append(str(exc))
    for index, python_hook in enumerate(point.python):
        try:
            await _run_python_hook(kind, index, python_hook, container, point.python_timeout)
        except HookError as exc:
            warnings.append(str(exc))
    return warnings


_publish(PythonHooks)  # annotated: keeps its module (see _publish)
