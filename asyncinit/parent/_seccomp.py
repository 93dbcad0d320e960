"""The parent's half of runc's procSeccomp: the init's listener fd to the seccomp agent."""

from __future__ import annotations

import os

from .._errors import InitError
from ..seccomp import AgentError, process_state, send_to_agent
from ..sync_pipe import ProtocolError
from ._container import Container


async def hand_listener_to_agent(container: Container, fd_number: object) -> None:
    """Copy the init's listener (its fd ``fd_number``) and send it to ``listenerPath``.

    As runc's sendContainerProcessState: the ContainerProcessState JSON and the fd
    in one message; the agent answers the container's notified syscalls from now on.
    """
    profile = container.spec.linux.seccomp if container.spec.linux else None
    if not isinstance(fd_number, int) or profile is None or not profile.listener_path:
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
    try:
        message = process_state(
            container.state("creating"), pid=container.pid, metadata=profile.listener_metadata
        )
        await send_to_agent(profile.listener_path, message, listener)
    except AgentError as exc:
        raise InitError(
            exc.strerror or str(exc),
            errno=exc.errno,
            operation="connect",
            stage="seccomp",
            field="linux.seccomp.listenerPath",
            path=profile.listener_path,
        ) from exc
    finally:
        os.close(listener)
