"""The sync pipe: typed, framed messages between the parent and the init.

The channel is one end of an ``AF_UNIX``/``SOCK_SEQPACKET`` socketpair.  SEQPACKET
keeps message boundaries, so one ``sendmsg`` is one message: a JSON object
``{"type": ..., **fields}`` with file descriptors riding alongside as
``SCM_RIGHTS`` (a pty master, a mount fd).  End of file means the peer is gone:
the init treats it as "the parent died" and exits; the parent treats an EOF it
did not expect as "the init died" and raises.  The vocabulary and the sequence
are documented in ``docs/protocol.md``.

Waiting uses :func:`anyio.wait_readable` on the raw socket, so one channel works
unchanged on asyncio and trio and needs nothing from the event loop but that.
"""

from __future__ import annotations

import array
import contextlib
import fcntl
import json
import os
import socket
from collections.abc import Mapping, Sequence
from typing import Any, Final

import anyio

from ._errors import ContainerStartError
from ._scm import FD_SPACE, MAX_MESSAGE, MAX_SPILL, received_fds


class Kind:
    """Message types.  ``init ->`` and ``parent ->`` give the direction."""

    PLAN: Final = "plan"  # parent -> init: the compiled plan to execute
    #: parent -> init: PID 1 is in the container's cgroup (plan["await_cgroup"]): the
    #: init may fork and exec from now on.  Arrives at any point after the plan.
    CGROUP: Final = "cgroup"
    MOUNT_PLEASE: Final = "mount_please"  # init -> parent: build mounts[index]'s source
    MOUNT_FD: Final = "mount_fd"  # parent -> init: the detached mount, as the one fd
    HOOKS: Final = "hooks"  # init -> parent: run prestart/createRuntime hooks now, I wait
    HOOKS_DONE: Final = "hooks_done"  # parent -> init: hooks ran, go on
    READY: Final = "ready"  # init -> parent: the container is set up, waiting to exec
    RUN: Final = "run"  # parent -> init: exec the workload
    SECCOMP: Final = "seccomp"  # init -> parent: the seccomp listener is my fd N ({"fd": N})
    SECCOMP_DONE: Final = "seccomp_done"  # parent -> init: copied it (pidfd_getfd), go on
    EXEC: Final = "exec"  # init -> parent: calling execve now (EOF follows on success)
    #: init -> parent (runc create): set up, now waiting on the exec fifo; the parent
    #: may exit, the init closes its end and says nothing more
    CREATED: Final = "created"
    PTY: Final = "pty"  # init -> parent: the pty master of process.terminal (1 fd)
    WORKLOAD: Final = "workload"  # init -> parent: supervise mode, workload started (pid, pidfd)
    EXITED: Final = "exited"  # init -> parent: supervise mode, the workload's wait status
    ERROR: Final = "error"  # init -> parent: the start failed (structured, see InitError)


class ProtocolError(ContainerStartError):
    """The peer sent something the protocol does not allow, or vanished mid-way.

    A :class:`~asyncinit.ContainerStartError`: when it escapes ``spawn()`` (an init
    or fork server that broke the protocol), the container did not start, and
    everything it had started was cleaned up as for any other start failure.
    """


class PeerGone(ProtocolError):
    """End of file: the other side closed the sync pipe or died."""


class Truncated(ProtocolError):
    """A message, or its fds, did not fit: dropped whole (our fd table full: EMFILE)."""


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not valid JSON")


#: Strict JSON: NaN and Infinity are Python's extension, not JSON.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


class Message:
    """One sync-pipe message: its type, its JSON fields and the fds it carries."""

    __slots__ = ("fds", "fields", "kind")

    def __init__(
        self, kind: str, fields: Mapping[str, Any] | None = None, fds: Sequence[int] = ()
    ) -> None:
        self.kind = kind
        self.fields: dict[str, Any] = dict(fields or {})
        self.fds: tuple[int, ...] = tuple(fds)

    def encode(self) -> bytes:
        return json.dumps({"type": self.kind, **self.fields}, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, raw: bytes | str, fds: Sequence[int] = ()) -> Message:
        """Parse one payload: strict UTF-8 JSON, an object with a string ``type``.

        Whatever the peer sent, the only exception is ProtocolError: invalid
        UTF-8, NaN/Infinity, nesting deeper than the parser's recursion bound.
        """
        try:
            text = raw if isinstance(raw, str) else raw.decode("utf-8")
            data = _DECODER.decode(text)
        except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
            raise ProtocolError(f"malformed sync-pipe message: {raw[:80]!r}") from exc
        if not isinstance(data, dict) or not isinstance(data.get("type"), str):
            raise ProtocolError(f"malformed sync-pipe message: {raw[:80]!r}")
        kind = data.pop("type")
        return cls(kind, data, fds)

    def __repr__(self) -> str:
        return f"Message({self.kind!r}, {self.fields!r}, fds={self.fds!r})"


def socketpair() -> tuple[socket.socket, socket.socket]:
    """A fresh close-on-exec SEQPACKET pair (parent end, init end)."""
    return socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)


def send_blocking(sock: socket.socket, message: Message) -> None:
    """Send from synchronous code (the fork server, the init's final exec path)."""
    payload = message.encode()
    fds = message.fds
    spill = -1
    if len(payload) > MAX_MESSAGE:
        # Too big for one datagram (a plan with large annotations): the body travels
        # in a sealed memfd, passed as the last fd; the datagram only says so.
        spill = _spill(payload)
        payload = json.dumps({"type": message.kind, _SPILLED: True}).encode()
        fds = (*fds, spill)
    try:
        ancillary = []
        if fds:
            ancillary = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))]
        sock.sendmsg([payload], ancillary)
    finally:
        if spill >= 0:
            os.close(spill)


_SPILLED: Final = "spilled"
_F_ADD_SEALS = 1033
_F_GET_SEALS = 1034
_SEALS = 0x1 | 0x2 | 0x4 | 0x8  # F_SEAL_SEAL | SHRINK | GROW | WRITE


def _spill(payload: bytes) -> int:
    fd = os.memfd_create("asyncinit-message", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    try:
        view = memoryview(payload)
        while view:
            view = view[os.write(fd, view) :]
        fcntl.fcntl(fd, _F_ADD_SEALS, _SEALS)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _unspill(message: Message, limit: int) -> Message:
    """The message whose body travelled in a memfd (the last fd, left for the caller to close).

    The fd comes from the peer: it must be a memfd sealed against writing,
    growing and shrinking (so its size is fixed and known before reading) and
    at most ``limit`` bytes; a pipe, a directory, /dev/zero or an unsealed file
    is a ProtocolError, and nothing is read.  The body is decoded straight from
    a read-only mapping: no copy of it outlives this call.
    """
    import mmap
    import stat

    if message.fields.get(_SPILLED) is not True or len(message.fields) != 1 or not message.fds:
        raise ProtocolError(f"malformed spilled sync-pipe message {message.kind!r:.80}")
    if limit <= 0:
        raise ProtocolError("spilled sync-pipe messages are not accepted here")
    fd = message.fds[-1]
    try:
        info = os.fstat(fd)
        seals = fcntl.fcntl(fd, _F_GET_SEALS) if stat.S_ISREG(info.st_mode) else 0
    except OSError:  # F_GET_SEALS: EINVAL on anything but a memfd
        seals = 0
    if seals & _SEALS != _SEALS:
        raise ProtocolError("a spilled sync-pipe message must come in a sealed memfd")
    if not 0 < info.st_size <= limit:
        raise ProtocolError(f"spilled sync-pipe message of {info.st_size} bytes (limit {limit})")
    with mmap.mmap(fd, info.st_size, prot=mmap.PROT_READ) as body:
        try:
            text = str(body, "utf-8")
        except UnicodeDecodeError as exc:
            raise ProtocolError(f"spilled sync-pipe message: invalid UTF-8 ({exc})") from None
    return Message.decode(text, message.fds[:-1])


def receive_raw(sock: socket.socket, max_spill: int = MAX_SPILL) -> Message:
    """One non-blocking receive attempt; raises BlockingIOError when nothing is there.

    Anything malformed is a ProtocolError, and then every fd that came with it is closed.
    """
    data, ancillary, flags, _ = sock.recvmsg(MAX_MESSAGE, FD_SPACE, socket.MSG_CMSG_CLOEXEC)
    fds = received_fds(ancillary)
    try:
        if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
            raise Truncated("sync-pipe message truncated")
        if not data and not fds:
            raise PeerGone("the other end of the sync pipe closed")
        message = Message.decode(data, fds)
        if _SPILLED in message.fields:
            message = _unspill(message, max_spill)
            os.close(fds[-1])
    except BaseException:
        for fd in fds:
            _close_quietly(fd)
        raise
    return message


def receive_blocking(sock: socket.socket, max_spill: int = MAX_SPILL) -> Message:
    sock.setblocking(True)
    try:
        return receive_raw(sock, max_spill)
    finally:
        sock.setblocking(False)


def _close_quietly(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.close(fd)


class Channel:
    """The async end of a sync pipe, usable from asyncio and trio alike."""

    def __init__(self, sock: socket.socket, *, max_spill: int = MAX_SPILL) -> None:
        """``max_spill``: the largest body a peer may send through a memfd (0: none)."""
        sock.setblocking(False)
        self.socket = sock
        self.max_spill = max_spill

    @classmethod
    def from_fd(cls, fd: int) -> Channel:
        return cls(socket.socket(fileno=fd))

    async def send(
        self, kind: str, fields: Mapping[str, Any] | None = None, fds: Sequence[int] = ()
    ) -> None:
        message = Message(kind, fields, fds)
        while True:
            try:
                send_blocking(self.socket, message)
            except BlockingIOError:
                await anyio.wait_writable(self.socket)
            except (BrokenPipeError, ConnectionResetError) as exc:
                raise PeerGone("the other end of the sync pipe closed") from exc
            else:
                return

    async def receive(self) -> Message:
        while True:
            try:
                return receive_raw(self.socket, self.max_spill)
            except BlockingIOError:
                await anyio.wait_readable(self.socket)
            except ConnectionResetError as exc:
                raise PeerGone("the other end of the sync pipe closed") from exc

    async def expect(self, kind: str) -> Message:
        """Receive the next message and insist on its type (an error is raised by the caller)."""
        message = await self.receive()
        if message.kind != kind:
            raise ProtocolError(f"expected {kind!r} on the sync pipe, got {message.kind!r}")
        return message

    def close(self) -> None:
        self.socket.close()
