"""The parent's half of runc's procSeccomp: the init's listener to an agent or to Python.

With ``linux.seccomp.listenerPath`` the listener goes to runc's seccomp agent
protocol (:func:`hand_listener_to_agent`); with ``spawn(seccomp_handler=...)``
a :class:`NotificationService` answers the notifications in the caller's event
loop for as long as the container lives.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Coroutine
from typing import Any

import anyio

from .._errors import InitError, SeccompHandlerError
from ..seccomp import (
    AgentError,
    Handler,
    LinuxSeccomp,
    Notification,
    Notifications,
    process_state,
    send_to_agent,
    serve,
)
from ..sync_pipe import ProtocolError
from ._container import Container


async def take_listener(container: Container, fd_number: object, handler: Handler | None) -> None:
    """The init's listener (its fd ``fd_number``): to ``handler`` if given, else the agent."""
    profile = container.spec.linux.seccomp if container.spec.linux else None
    wanted = handler is not None or (profile is not None and profile.listener_path)
    if not isinstance(fd_number, int) or profile is None or not wanted:
        raise ProtocolError(f"unexpected seccomp listener message: fd {fd_number!r}")
    try:
        listener = container.copy_fd(fd_number)
    except OSError as exc:
        raise InitError(
            f"pidfd_getfd: {exc.strerror}",
            errno=exc.errno,
            operation="pidfd_getfd",
            stage="seccomp",
            field="linux.seccomp",
        ) from exc
    if handler is not None:
        container.serve_notifications(NotificationService(listener, handler, container.kill))
        return
    try:
        await hand_listener_to_agent(container, profile, listener)
    finally:
        os.close(listener)


async def hand_listener_to_agent(
    container: Container, profile: LinuxSeccomp, listener: int
) -> None:
    """Send ``listener`` to ``listenerPath`` (the caller keeps and closes its fd).

    As runc's sendContainerProcessState: the ContainerProcessState JSON and the fd
    in one message; the agent answers the container's notified syscalls from now on.
    """
    try:
        message = process_state(
            container.state("creating"), pid=container.pid, metadata=profile.listener_metadata
        )
        await send_to_agent(profile.listener_path or "", message, listener)
    except AgentError as exc:
        raise InitError(
            exc.strerror or str(exc),
            errno=exc.errno,
            operation="connect",
            stage="seccomp",
            field="linux.seccomp.listenerPath",
            path=profile.listener_path,
        ) from exc


class NotificationService:
    """``seccomp_handler`` answering a listener in the caller's event loop.

    Started from within spawn() but outliving it, so not in a task group of
    spawn's: an asyncio task, or a trio system task (both in the caller's loop).
    It owns the listener. It ends by itself when no process uses the filter,
    or by :meth:`aclose` (the container was reaped). A handler's exception kills
    the container (``kill``) and is kept in :attr:`error`: the syscall it was
    answering is failed, never let through.
    """

    def __init__(self, listener: int, handler: Handler, kill: Callable[[], None]) -> None:
        self.error: SeccompHandlerError | None = None
        self._notifications = Notifications(listener)
        self._handler = handler
        self._kill = kill
        self._scope = anyio.CancelScope()
        self._done = anyio.Event()
        _start_in_caller_loop(self._run)

    async def _answer(self, call: Notification) -> None:
        """The handler; if it raises, the container is killed before its call is
        failed (EPERM), so the workload never goes on past that syscall."""
        try:
            await self._handler(call)
        except BaseException:
            self._kill()
            raise

    async def _run(self) -> None:
        try:
            with self._scope:
                await serve(self._notifications, self._answer)
        except Exception as exc:  # a trio system task must not raise
            cause = exc
            while isinstance(cause, ExceptionGroup) and len(cause.exceptions) == 1:
                cause = cause.exceptions[0]
            self.error = SeccompHandlerError(f"seccomp_handler raised {cause!r}")
            self.error.__cause__ = cause
            self._kill()
        finally:
            with anyio.CancelScope(shield=True):
                await self._notifications.aclose()
            self._done.set()

    async def aclose(self) -> None:
        """Stop answering (pending calls are failed with EPERM) and close the listener."""
        self._scope.cancel()
        await self._done.wait()


_BACKGROUND: set[object] = set()  # asyncio keeps only weak references to tasks


def _start_in_caller_loop(run: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run ``run`` as a task of the current event loop that no task group bounds."""
    trio = sys.modules.get("trio")
    if trio is not None:
        try:
            trio.lowlevel.current_task()
        except RuntimeError:
            pass  # trio is imported, but this is not a trio loop
        else:
            trio.lowlevel.spawn_system_task(run)
            return
    import asyncio

    task = asyncio.get_running_loop().create_task(run())
    _BACKGROUND.add(task)
    task.add_done_callback(_BACKGROUND.discard)
