"""Foreground plumbing for ``asyncinit run``: signals to the container, the pty to the terminal."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import termios
import tty
from collections.abc import AsyncIterator, Iterator
from typing import Protocol

import anyio

from .parent._streams import PtyStream


class Attached(Protocol):
    """What the foreground needs of a container: a Container, or runc run's own child."""

    pty: PtyStream | None

    def send_signal(self, signum: int) -> None: ...

    async def wait(self) -> int: ...


async def forward_signals(container: Attached, signals: AsyncIterator[int]) -> None:
    """Pass the signals this process receives to PID 1, until cancelled."""
    async for signum in signals:
        container.send_signal(signum)


async def forward_interrupts(container: Attached) -> None:
    """After the start, SIGINT (Ctrl-C) goes to the container too."""
    with anyio.open_signal_receiver(signal.SIGINT) as signals:
        await forward_signals(container, signals)


@contextlib.contextmanager
def _raw_terminal(fd: int) -> Iterator[None]:
    saved = termios.tcgetattr(fd)
    try:
        tty.setraw(fd)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _copy_size(pty: PtyStream) -> None:
    with contextlib.suppress(OSError):
        size = os.get_terminal_size(sys.stdin.fileno())
        pty.resize(size.lines, size.columns)


async def _pump_stdin(pty: PtyStream) -> None:
    stdin = sys.stdin.fileno()
    while True:
        # A file or /dev/null: epoll refuses it (EPERM), and reading it never blocks.
        with contextlib.suppress(PermissionError):
            await anyio.wait_readable(stdin)
        data = os.read(stdin, 4096)
        if not data:
            return
        await pty.send(data)


async def _pump_output(pty: PtyStream) -> None:
    stdout = sys.stdout.fileno()
    with contextlib.suppress(anyio.EndOfStream, anyio.ClosedResourceError):
        while True:
            data = await pty.receive()
            while data:
                data = data[os.write(stdout, data) :]


async def _follow_window(pty: PtyStream) -> None:
    with anyio.open_signal_receiver(signal.SIGWINCH) as signals:
        async for _ in signals:
            _copy_size(pty)


async def attach_terminal(container: Attached) -> int:
    """Connect the user's terminal to the container's pty until it exits; its exit code."""
    pty = container.pty
    assert pty is not None
    interactive = sys.stdin.isatty()
    with _raw_terminal(sys.stdin.fileno()) if interactive else contextlib.nullcontext():
        if interactive:
            _copy_size(pty)
        async with anyio.create_task_group() as tg:
            tg.start_soon(_pump_stdin, pty)
            tg.start_soon(_follow_window, pty)
            await _pump_output(pty)
            code = await container.wait()
            tg.cancel_scope.cancel()
    return code
