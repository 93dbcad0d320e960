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
from ._inbox import StageFailed
from ._lifecycle import Lifecycle
from ._process import Prepared, exec_workload
from ._supervise import supervise

#: Exit status of an init that failed before exec (the parent has the details).
EXIT_INIT_FAILED = 127


async def _create(sock: socket.socket) -> tuple[InitPlan, Prepared] | None:
    """Receive the plan and build the container; None when it failed (already reported)."""
    channel = Channel(sock)
    stage = "plan"
    try:
        message = await channel.expect(Kind.PLAN)
        plan: InitPlan = message.fields["plan"]
        state: dict[str, Any] = message.fields.get("state", {})
        stage = "create"
        try:
            prepared = await Lifecycle(channel, plan, state).run()
        except BaseExceptionGroup as group:
            raise _unwrap(group) from None
    except PeerGone:
        return None  # the parent is gone: nobody to report to, just stop
    except StageFailed as failed:
        await _report(channel, error_fields(failed.cause, failed.stage, failed.field))
        return None
    except Exception as exc:
        await _report(channel, error_fields(exc, stage))
        return None
    return plan, prepared


def _unwrap(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The one error that ended the start: the parent's death first, else the first failure."""
    gone = group.subgroup(PeerGone)
    leaves = gone.exceptions if gone is not None else group.exceptions
    first = leaves[0]
    return _unwrap(first) if isinstance(first, BaseExceptionGroup) else first


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
    try:
        created = anyio.run(_create, sock, backend=backend)
    except BaseException as exc:  # KeyboardInterrupt, SystemExit, a bug in anyio...
        with contextlib.suppress(OSError):
            send_blocking(sock, Message(Kind.ERROR, error_fields(exc, "init")))
        os._exit(EXIT_INIT_FAILED)
    if created is None:
        os._exit(EXIT_INIT_FAILED)
    plan, prepared = created
    sock.setblocking(True)
    try:
        if plan["process"]["mode"] == "supervise":
            supervise(plan["process"], prepared, sock)
        exec_workload(plan["process"], prepared, sock)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            send_blocking(sock, Message(Kind.ERROR, error_fields(exc, "exec", "process.args")))
        sys.stderr.flush()
        os._exit(EXIT_INIT_FAILED)
