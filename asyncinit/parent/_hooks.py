"""Parent-side hooks: the OCI hooks the runtime runs, and Python callables beside them."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from .._commands import run_command
from .._errors import StepError
from ..config import Hook, Spec
from ._compile import _command

if TYPE_CHECKING:
    from ._container import Container

PythonHook = Callable[["Container"], Awaitable[None]]


@attrs.frozen
class PythonHooks:
    """Async callables run by the parent at the OCI hook points of the same name."""

    create_runtime: Sequence[PythonHook] = ()
    poststart: Sequence[PythonHook] = ()
    poststop: Sequence[PythonHook] = ()


class HookError(StepError):
    """An OCI or Python hook failed; ``kind`` and ``index`` say which."""

    def __init__(self, message: str, *, kind: str, index: int, path: str | None) -> None:
        super().__init__(message, path=path, field=f"hooks.{kind}[{index}]")
        self.kind = kind
        self.index = index


def oci_state(spec: Spec, container_id: str, pid: int, bundle: str, status: str) -> dict[str, Any]:
    return {
        "ociVersion": spec.oci_version,
        "id": container_id,
        "status": status,
        "pid": pid,
        "bundle": bundle,
        "annotations": dict(spec.annotations),
    }


async def run_oci_hooks(kind: str, hooks: Sequence[Hook], state: dict[str, Any]) -> None:
    stdin = json.dumps(state).encode()
    for index, hook in enumerate(hooks):
        try:
            await run_command(_command(hook, f"hooks.{kind}[{index}]"), stdin)
        except StepError as exc:
            raise HookError(
                f"{kind} hook {index} failed: {exc.message}", kind=kind, index=index, path=hook.path
            ) from exc


async def run_python_hooks(kind: str, hooks: Sequence[PythonHook], container: Container) -> None:
    for index, hook in enumerate(hooks):
        try:
            await hook(container)
        except Exception as exc:
            raise HookError(
                f"{kind} Python hook {index} ({getattr(hook, '__name__', hook)}) "
                f"raised {type(exc).__name__}: {exc}",
                kind=kind,
                index=index,
                path=None,
            ) from exc
