"""PID 1's entry point: run the lifecycle in an event loop, then exec the workload.

Works for any parent holding the other end of the sync socket: ``spawn()``'s fork
server (which calls :func:`main` in a forked, already-warm interpreter) or the
``unshare`` command running ``python -m asyncinit init --sync-fd N``.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
from typing import Any, NoReturn

import anyio

from .. import _syscalls as sc
from .._errors import error_fields
from .._plan import InitPlan
from ..sync_pipe import Channel, Kind, Message, PeerGone, send_blocking
from ._lifecycle import Lifecycle, StageFailed
from ._process import exec_workload
from ._supervise import supervise

#: Exit status of an init that failed before exec (the parent has the details).
EXIT_INIT_FAILED = 127


async def _create(sock: socket.socket) -> InitPlan | None:
    """Receive the plan and build the container; None when it failed (already reported)."""
    channel = Channel(sock)
    stage = "plan"
    try:
        message = await channel.expect(Kind.PLAN)
        plan: InitPlan = message.fields["plan"]
        state: dict[str, Any] = message.fields.get("state", {})
        stage = "create"
        await Lifecycle(channel, plan, state).create()
    except PeerGone:
        return None  # the parent is gone: nobody to report to, just stop
    except StageFailed as failed:
        await _report(channel, error_fields(failed.cause, failed.stage, failed.field))
        return None
    except Exception as exc:
        await _report(channel, error_fields(exc, stage))
        return None
    return plan


async def _report(channel: Channel, fields: dict[str, Any]) -> None:
    with contextlib.suppress(OSError, PeerGone):
        await channel.send(Kind.ERROR, fields)


def main(sync_fd: int, backend: str = "asyncio") -> NoReturn:
    """Run as PID 1 of the container.  Never returns."""
    # Until execve this process is the host's interpreter: keep /proc/1/exe and
    # /proc/1/mem out of the container's reach (CVE-2019-5736).
    sc.prctl(sc.PR_SET_DUMPABLE, 0)
    os.umask(0o022)
    sock = socket.socket(fileno=sync_fd)
    os.set_inheritable(sync_fd, False)
    plan = anyio.run(_create, sock, backend=backend)
    if plan is None:
        os._exit(EXIT_INIT_FAILED)
    sock.setblocking(True)
    try:
        if plan["process"]["mode"] == "supervise":
            supervise(plan["process"], sock)
        exec_workload(plan["process"], sock)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            send_blocking(sock, Message(Kind.ERROR, error_fields(exc, "exec", "process.args")))
        sys.stderr.flush()
        os._exit(EXIT_INIT_FAILED)
