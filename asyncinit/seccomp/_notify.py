"""User notification (SCMP_ACT_NOTIFY): receive, answer, and an async iterator.

A syscall a NOTIFY rule matches blocks in the kernel until the holder of the
listener fd answers it: fail it with an errno, make it return a value without
running it, or let it run (``continue_``: only where the check cannot be raced,
see seccomp_unotify(2)). :class:`Notifications` yields them on the caller's
event loop (asyncio or trio, through anyio) so a Python program can allow, deny
or emulate a container's syscalls without a separate agent.
"""

from __future__ import annotations

import errno as errno_module
import fcntl
import os
import select
import struct
from collections.abc import Awaitable, Callable
from typing import Final, TypeAlias

import anyio

from . import _kernel

__all__ = ["Handler", "Notification", "Notifications", "serve"]

# struct seccomp_notif: id, pid, flags, then struct seccomp_data: nr, arch, ip, args[6]
_NOTIF: Final = struct.Struct("=QIIiIQ6Q")
# struct seccomp_notif_resp: id, val, error, flags
_RESP: Final = struct.Struct("=QqiI")
# struct seccomp_notif_addfd: id, flags, srcfd, newfd, newfd_flags
_ADDFD: Final = struct.Struct("=QIIII")
_ID: Final = struct.Struct("=Q")


class Notification:
    """One blocked syscall: ``syscall`` number, ``arch`` (AUDIT_ARCH), ``args``, ``pid``.

    Answer it exactly once with :meth:`respond` or :meth:`continue_`; each
    returns False when the notification is gone (the caller was killed, or a
    signal interrupted the syscall), which is not an error.
    """

    __slots__ = (
        "_fd",
        "answered",
        "arch",
        "args",
        "flags",
        "id",
        "instruction_pointer",
        "pid",
        "syscall",
    )

    def __init__(self, fd: int, raw: bytes) -> None:
        fields = _NOTIF.unpack(raw)
        self._fd = fd
        self.id: int = fields[0]
        self.pid: int = fields[1]
        self.flags: int = fields[2]
        self.syscall: int = fields[3]
        self.arch: int = fields[4]
        self.instruction_pointer: int = fields[5]
        self.args: tuple[int, ...] = fields[6:]
        self.answered = False

    def __repr__(self) -> str:
        name = self.syscall_name or self.syscall
        return f"<Notification {self.id} pid {self.pid} {name}{self.args}>"

    @property
    def syscall_name(self) -> str | None:
        """The syscall's name, from libseccomp (loaded on first use)."""
        from ._libseccomp import libseccomp

        return libseccomp().syscall_name(self.syscall, self.arch)

    def is_valid(self) -> bool:
        """SECCOMP_IOCTL_NOTIF_ID_VALID: the caller still waits for this answer."""
        try:
            fcntl.ioctl(self._fd, _kernel.IOCTL_NOTIF_ID_VALID, _ID.pack(self.id))
        except OSError as error:
            if error.errno == errno_module.ENOENT:
                return False
            raise
        return True

    def respond(self, *, errno: int = 0, value: int = 0) -> bool:
        """Fail the syscall with ``errno``, or (errno 0) return ``value`` without running it."""
        if errno < 0:
            raise ValueError(f"errno must be positive, got {errno}")
        return self._send(_RESP.pack(self.id, 0 if errno else value, -errno, 0))

    def continue_(self) -> bool:
        """Let the kernel run the syscall as if the filter had allowed it."""
        return self._send(_RESP.pack(self.id, 0, 0, _kernel.USER_NOTIF_FLAG_CONTINUE))

    def _send(self, response: bytes) -> bool:
        if self.answered:
            raise RuntimeError(f"notification {self.id} was already answered")
        self.answered = True
        try:
            fcntl.ioctl(self._fd, _kernel.IOCTL_NOTIF_SEND, response)
        except OSError as error:
            if error.errno == errno_module.ENOENT:
                return False
            raise
        return True

    def add_fd(self, fd: int, *, target: int | None = None, cloexec: bool = False) -> int:
        """Install a copy of ``fd`` in the caller (SECCOMP_IOCTL_NOTIF_ADDFD); its number there."""
        flags = 0 if target is None else _kernel.ADDFD_FLAG_SETFD
        request = bytearray(
            _ADDFD.pack(self.id, flags, fd, target or 0, os.O_CLOEXEC if cloexec else 0)
        )
        return int(fcntl.ioctl(self._fd, _kernel.IOCTL_NOTIF_ADDFD, request))

    def read_memory(self, address: int, size: int) -> bytes:
        """``size`` bytes of the caller's memory at ``address`` (an argument's pointer).

        Checked against the notification afterwards: if the caller died and its
        pid was reused, the bytes would be another process's (ProcessLookupError).
        The caller may still change the memory afterwards: decide on this copy.
        """
        try:
            fd = os.open(f"/proc/{self.pid}/mem", os.O_RDONLY | os.O_CLOEXEC)
            try:
                data = os.pread(fd, size, address)
            finally:
                os.close(fd)
        except OSError:
            if self.is_valid():
                raise
            data = b""
        if not self.is_valid():
            raise ProcessLookupError(errno_module.ESRCH, "the notification is gone")
        return data

    def read_string(self, address: int, limit: int = 4096) -> bytes:
        """A NUL-terminated string (a path argument), at most ``limit`` bytes."""
        page = 4096
        data = b""
        while len(data) < limit:
            chunk_size = min(page - (address + len(data)) % page, limit - len(data))
            chunk = self.read_memory(address + len(data), chunk_size)
            end = chunk.find(b"\0")
            if end >= 0 or not chunk:
                return data + chunk[: max(end, 0)]
            data += chunk
        return data


class Notifications:
    """The notifications arriving on a listener fd, as an async iterator (asyncio or trio).

    Owns the fd: ``aclose()`` (or ``async with``) closes it. A notification the
    consumer left unanswered when it asks for the next one, or closes, is
    failed with EPERM (answered "no" rather than left blocked forever).
    Iteration ends when no process uses the filter any more (POLLHUP: once the
    last one exited on Linux 6.18, once it was reaped on 6.1).
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._pending: Notification | None = None

    def __aiter__(self) -> Notifications:
        return self

    async def __aenter__(self) -> Notifications:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def __anext__(self) -> Notification:
        self._deny_pending()
        notification = await self.next_or_none()
        if notification is None:
            raise StopAsyncIteration
        self._pending = notification
        return notification

    async def next_or_none(self) -> Notification | None:
        """The next notification, None once no process uses the filter (or closed).

        Unlike iteration, leaves earlier notifications alone: for callers that
        answer several at once (:func:`serve`).
        """
        while self.fd >= 0:
            await anyio.wait_readable(self.fd)
            events = _poll(self.fd)
            if events & select.POLLIN:
                notification = self.receive()
                if notification is not None:
                    return notification
            elif events & (select.POLLHUP | select.POLLERR | select.POLLNVAL):
                return None
        return None

    def receive(self) -> Notification | None:
        """SECCOMP_IOCTL_NOTIF_RECV; None if the notification vanished meanwhile.

        Blocks when nothing is pending: call it after the fd polled readable.
        """
        buffer = bytearray(_NOTIF.size)  # the kernel wants it zeroed
        try:
            fcntl.ioctl(self.fd, _kernel.IOCTL_NOTIF_RECV, buffer)
        except OSError as error:
            if error.errno in (errno_module.ENOENT, errno_module.EINTR):
                return None
            raise
        return Notification(self.fd, bytes(buffer))

    def _deny_pending(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None and not pending.answered:
            pending.respond(errno=errno_module.EPERM)

    async def aclose(self) -> None:
        if self.fd >= 0:
            self._deny_pending()
            fd, self.fd = self.fd, -1
            os.close(fd)


#: An async callable answering one notification (``respond`` or ``continue_``).
Handler: TypeAlias = Callable[[Notification], Awaitable[object]]


async def serve(notifications: Notifications, handler: Handler) -> None:
    """Answer every notification with ``handler``, each in its own task, until the end.

    Fails closed: a notification the handler returns without answering, or
    raises on, is failed with EPERM (the syscall never runs). A handler's
    exception ends the serving: it propagates (in an exception group) once the
    other calls were cancelled and answered. Returns when no process uses the
    filter any more.
    """
    async with anyio.create_task_group() as group:
        while (notification := await notifications.next_or_none()) is not None:
            group.start_soon(_answer, handler, notification)


async def _answer(handler: Handler, notification: Notification) -> None:
    try:
        await handler(notification)
    finally:
        if not notification.answered:
            notification.respond(errno=errno_module.EPERM)


def _poll(fd: int) -> int:
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    events = poller.poll(0)
    return events[0][1] if events else 0
