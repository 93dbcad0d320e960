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

from .._errors import error_fields
from .._plan import InitPlan
from .._syscalls._process import PR_SET_DUMPABLE, prctl
from ..sync_pipe import Channel, Kind, Message, PeerGone, send_blocking
from ._inbox import StageFailed
from ._lifecycle import Lifecycle
from ._process import Prepared, exec_workload
from ._supervise import supervise

#: Exit status of an init that failed before exec (the parent has the details).
EXIT_INIT_FAILED = 127


async def _create(
    sock: socket.socket,
) -> tuple[InitPlan, Prepared, dict[str, Any]] | None:
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
    return plan, prepared, state


def _unwrap(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The one error that ended the start: the parent's death first, else the first failure."""
    gone = group.subgroup(PeerGone)
    leaves = gone.exceptions if gone is not None else group.exceptions
    first = leaves[0]
    return _unwrap(first) if isinstance(first, BaseExceptionGroup) else first


async def _report(channel: Channel, fields: dict[str, Any]) -> None:
    with contextlib.suppress(OSError, PeerGone):
        await channel.send(Kind.ERROR, fields)


def _wait_for_start(
    plan: InitPlan, prepared: Prepared, state: dict[str, Any], backend: str
) -> None:
    """runc's exec fifo: block until ``start`` opens it, then the startContainer hooks.

    The fd is O_PATH (opened before the jail); reopened through /proc for writing,
    the open blocks until ``start`` opens the fifo for reading.  A failure here has
    nobody to tell but stderr and the exit status, as with runc.
    """
    fd = os.open(f"/proc/self/fd/{prepared.exec_fifo}", os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, b"0")
    finally:
        os.close(fd)
        os.close(prepared.exec_fifo)
    if plan["start_container_hooks"]:
        anyio.run(_start_hooks, plan, state, backend=backend)


def _last_words(exc: BaseException) -> NoReturn:
    """A created container's init failing after ``create`` went: stderr and the status."""
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.write(f"asyncinit init: {exc}\n")
        sys.stderr.flush()
    os._exit(EXIT_INIT_FAILED)


async def _start_hooks(plan: InitPlan, state: dict[str, Any]) -> None:
    import json

    from .._commands import run_command

    document = json.dumps({**state, "status": "created"}).encode()
    for command in plan["start_container_hooks"]:
        await run_command(command, document)


def main(sync_fd: int, backend: str = "asyncio") -> NoReturn:
    """Run as PID 1 of the container.  Never returns."""
    # Until execve this process is the host's interpreter: keep /proc/1/exe and
    # /proc/1/mem out of the container's reach (CVE-2019-5736).
    prctl(PR_SET_DUMPABLE, 0)
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
    plan, prepared, state = created
    if prepared.exec_fifo >= 0:
        sock.close()  # runc: the parent has gone; nobody hears us from here on
        try:
            _wait_for_start(plan, prepared, state, backend)
            exec_workload(plan["process"], prepared, None)
        except BaseException as exc:
            _last_words(exc)
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
