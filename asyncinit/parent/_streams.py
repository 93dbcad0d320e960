"""Byte streams over plain pipe and pty fds, on whichever event loop runs (asyncio or trio)."""

from __future__ import annotations

import errno
import fcntl
import os
import struct
import termios

import anyio
from anyio.abc import ByteReceiveStream, ByteSendStream, ByteStream


class _Fd:
    """A non-blocking fd read and written with anyio's readiness waits."""

    def __init__(self, fd: int) -> None:
        os.set_blocking(fd, False)
        self.fd = fd
        self._closed = False

    async def _read(self, max_bytes: int) -> bytes:
        while True:
            if self._closed:
                raise anyio.ClosedResourceError
            try:
                data = os.read(self.fd, max_bytes)
            except BlockingIOError:
                await anyio.wait_readable(self.fd)
                continue
            except OSError as exc:
                # A pty master reads EIO once every slave fd is closed: its end of file.
                if exc.errno == errno.EIO:
                    raise anyio.EndOfStream from None
                raise
            if not data:
                raise anyio.EndOfStream
            return data

    async def _write(self, item: bytes) -> None:
        view = memoryview(item)
        while view:
            if self._closed:
                raise anyio.ClosedResourceError
            try:
                written = os.write(self.fd, view)
            except BlockingIOError:
                await anyio.wait_writable(self.fd)
                continue
            except BrokenPipeError as exc:
                raise anyio.BrokenResourceError from exc
            view = view[written:]

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            os.close(self.fd)


class PipeReceiveStream(_Fd, ByteReceiveStream):
    async def receive(self, max_bytes: int = 65536) -> bytes:
        return await self._read(max_bytes)


class PipeSendStream(_Fd, ByteSendStream):
    async def send(self, item: bytes) -> None:
        await self._write(item)


class PtyStream(_Fd, ByteStream):
    """The master side of the container's pty: read the workload's output, type its input."""

    async def receive(self, max_bytes: int = 65536) -> bytes:
        return await self._read(max_bytes)

    async def send(self, item: bytes) -> None:
        await self._write(item)

    async def send_eof(self) -> None:
        await self._write(b"\x04")  # ^D: end of input in canonical mode

    def resize(self, rows: int, columns: int) -> None:
        """Set the window size (the workload gets SIGWINCH)."""
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
