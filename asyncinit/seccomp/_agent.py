"""runc's seccomp agent protocol: the listener fd and the container state to ``listenerPath``.

As runc's ``sendContainerProcessState`` (runtime-spec "The Container Process
State"): one AF_UNIX SOCK_STREAM connection per container, one ``sendmsg`` of
the JSON with the fd in SCM_RIGHTS, then close. Existing agents (runc's
``contrib/cmd/seccompagent``, kinvolk's seccompagent) read exactly this.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

import anyio
import anyio.abc

from .._errors import AsyncInitError

__all__ = [
    "SECCOMP_FD_NAME",
    "AgentError",
    "process_state",
    "receive_process_state",
    "send_to_agent",
]

SECCOMP_FD_NAME: Final = "seccompFd"
_OCI_VERSION: Final = "1.0.2"


class AgentError(AsyncInitError, OSError):
    """The seccomp agent at ``linux.seccomp.listenerPath`` could not be reached."""


def process_state(state: Mapping[str, Any], *, pid: int, metadata: str | None) -> dict[str, Any]:
    """The ContainerProcessState runc sends: the OCI state (status "creating"), the fd's name."""
    message: dict[str, Any] = {
        "ociVersion": state.get("ociVersion", _OCI_VERSION),
        "fds": [SECCOMP_FD_NAME],
        "pid": pid,
    }
    if metadata:
        message["metadata"] = metadata
    message["state"] = {**state, "status": "creating", "pid": pid}
    return message


async def send_to_agent(listener_path: str, message: Mapping[str, Any], fd: int) -> None:
    """Connect to the agent, send ``message`` with ``fd``, close (one state per connection)."""
    payload = json.dumps(message, separators=(",", ":")).encode()
    try:
        stream = await anyio.connect_unix(listener_path)
    except OSError as error:
        raise AgentError(
            error.errno or 0,
            "failed to connect with seccomp agent specified in the seccomp profile"
            f" (linux.seccomp.listenerPath): {error.strerror or error}",
            listener_path,
        ) from None
    async with stream:
        try:
            await stream.send_fds(payload, [fd])
        except OSError as error:
            raise AgentError(
                error.errno or 0,
                f"cannot send the seccomp fd to the agent: {error.strerror}",
                listener_path,
            ) from None


async def receive_process_state(
    stream: anyio.abc.UNIXSocketStream, max_size: int = 1 << 20
) -> tuple[dict[str, Any], list[int]]:
    """The agent's side: the state and the fds named in its ``fds``.

    Reads until the JSON is complete, not until EOF: runc leaves its end of
    the connection open while the container starts (it closes only a dup).
    """
    data, fds = await stream.receive_fds(max_size, 4)
    buffer = bytearray(data)
    while True:
        try:
            message: dict[str, Any] = json.loads(buffer)
        except ValueError:
            if len(buffer) >= max_size:
                raise
            buffer += await stream.receive(max_size - len(buffer))
        else:
            return message, fds
