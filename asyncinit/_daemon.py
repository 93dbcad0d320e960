"""``asyncinit daemon``: a warm parent side that ``asyncinit run`` reaches over a unix socket.

A cold ``asyncinit run`` spends most of its time starting Python and importing
anyio, asyncio, cattrs and the parent side; ``runc run`` is one static binary.
The daemon pays for those once: it imports the parent side and starts its fork
server at start-up, then serves each connection as its own task with a warm
:func:`~asyncinit.parent._spawn.spawn` whose stdio are the client's fds.  The
client (``_client.py``) imports only the standard library.

Security model (docs/protocol.md, "Daemon"): the socket is 0600 in a 0700
directory, and a peer whose SO_PEERCRED uid differs from our euid is refused
anyway.  A client that disconnects before its container exited (even SIGKILL)
gets the container killed and reaped, poststop hooks included.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import signal
import socket
import stat
import struct
import sys
import traceback
import warnings
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TextIO

import anyio

from ._client import FORWARDED_SIGNALS, socket_path
from ._version import VERSION
from .cli import error_line, warning_line
from .sync_pipe import Channel, Message, PeerGone, ProtocolError, send_blocking

if TYPE_CHECKING:
    from .parent._container import Container

#: How long a new connection may take to send its request before it is dropped.
REQUEST_TIMEOUT = 10.0
#: Signals a client may ask us to deliver (SIGINT cancels a start still in progress).
ALLOWED_SIGNALS = frozenset((*FORWARDED_SIGNALS, signal.SIGINT))

#: Where warnings raised in a connection's task go (ConfigWarnings during spawn()).
_warning_sink: contextvars.ContextVar[Callable[[Warning | str, type[Warning], str, int], None]] = (
    contextvars.ContextVar("asyncinit_warning_sink")
)


class DaemonError(Exception):
    """The daemon cannot start (another one answers, the path is not ours to replace)."""


def peer_uid(conn: socket.socket) -> int:
    """The uid of the process that connected (SO_PEERCRED: taken at connect time)."""
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return int(struct.unpack("3i", creds)[1])


def peer_refusal(uid: int, euid: int) -> str | None:
    """Only our own uid may start containers through us (we run them with our rights)."""
    if uid != euid:
        return f"uid {uid} may not use this daemon (it serves uid {euid} only)"
    return None


def request_refusal(kind: str, fields: Mapping[str, Any], fd_count: int) -> str | None:
    """Why a request cannot be served (the client then runs in-process), or None."""
    if kind != "run":
        return f"unknown request {kind!r}"
    if fields.get("version") != VERSION:
        return f"version mismatch: daemon {VERSION}, client {fields.get('version')!r}"
    if fd_count != 3:
        return f"a run request carries fds 0, 1 and 2, got {fd_count} fds"
    bundle = fields.get("bundle")
    if not isinstance(bundle, str) or not os.path.isabs(bundle):
        return f"bundle must be an absolute path, got {bundle!r}"
    checks = {
        "id": isinstance(fields.get("id"), str),
        "backend": fields.get("backend") in ("asyncio", "trio"),
        "init": fields.get("init") in (None, "exec", "supervise"),
        "signal_group": fields.get("signal_group") in (None, True, False),
        "no_pivot": isinstance(fields.get("no_pivot"), bool),
        "console_size": _is_console_size(fields.get("console_size")),
    }
    bad = [name for name, ok in checks.items() if not ok]
    return f"malformed fields: {', '.join(bad)}" if bad else None


def _console_size(value: list[int] | None) -> tuple[int, int] | None:
    return None if value is None else (value[0], value[1])


def _is_console_size(value: object) -> bool:
    """None, or [rows, columns]: two positive ints."""
    if value is None:
        return True
    return (
        isinstance(value, list)
        and len(value) == 2
        and all(type(n) is int and 0 < n < 1 << 16 for n in value)
    )


def signal_action(started: bool, signum: int) -> str:
    """What a client's signal does: "forward", "queue" (until PID 1 exists), "cancel", "ignore".

    The same as the in-process CLI: SIGINT while the container starts cancels the
    start; the other forwarded signals wait for PID 1.
    """
    if signum not in ALLOWED_SIGNALS:
        return "ignore"
    if started:
        return "forward"
    return "cancel" if signum == signal.SIGINT else "queue"


class _Connection:
    """One client: its run request, the container, and everything the client sends later."""

    def __init__(self, channel: Channel, fields: dict[str, Any], stdio: tuple[int, ...]) -> None:
        self.channel = channel
        self.fields = fields
        self.stdio = list(stdio)
        self.container: Container | None = None  # once spawn() returned
        self.pending: list[int] = []
        self.start_scope = anyio.CancelScope()
        self.client_gone = False
        self._seen: set[tuple[str, type[Warning], str, int]] = set()
        self._backlog: list[Message] = []

    async def serve(self) -> None:
        _warning_sink.set(self._warning)
        code, error = 1, None
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._listen, tg.cancel_scope)
            code, error = await self._run()
            tg.cancel_scope.cancel()
        if error is not None:
            await self._send(Message("error", {"text": error, "code": code}))
        else:
            await self._send(Message("exit", {"code": code}))

    async def _run(self) -> tuple[int, str | None]:
        from .parent._spawn import spawn

        fields = self.fields
        try:
            try:
                with self.start_scope:
                    self.container = await spawn(
                        os.path.join(fields["bundle"], "config.json"),
                        bundle=fields["bundle"],
                        container_id=fields["id"],
                        stdin=self.stdio[0],
                        stdout=self.stdio[1],
                        stderr=self.stdio[2],
                        backend=fields["backend"],
                        init=fields["init"],
                        signal_group=fields["signal_group"],
                        no_pivot_root=fields["no_pivot"],
                        console_size=_console_size(fields.get("console_size")),
                    )
            finally:
                self._close_stdio()  # the fork server holds its own copies
            container = self.container
            if container is None:
                return 130, None  # interrupted while starting, as the CLI's KeyboardInterrupt
            async with container:
                for signum in self.pending:
                    container.send_signal(signum)
                if container.pty is not None:
                    # The client attaches it; ours would keep the pty open after it left.
                    await self._send(Message("pty", fds=[container.pty.fd]))
                    await container.pty.aclose()
                    container.pty = None
                code = int(await container.wait())
            for warning in container.warnings:
                self._warning(warning, UserWarning, "", 0)
            return code, None
        except Exception as exc:
            if self.fields.get("debug"):
                return 1, "".join(traceback.format_exception(exc)).rstrip("\n")
            return 1, error_line(exc)

    async def _listen(self, scope: anyio.CancelScope) -> None:
        """Signals from the client; its end of file kills the container (cancelling us)."""
        while True:
            try:
                message = await self.channel.receive()
            except ProtocolError:  # PeerGone included
                self.client_gone = True
                scope.cancel()
                return
            for fd in message.fds:
                os.close(fd)
            signum = message.fields.get("signo")
            if message.kind != "signal" or not isinstance(signum, int):
                continue
            action = signal_action(self.container is not None, signum)
            if action == "forward" and self.container is not None:
                self.container.send_signal(signum)
            elif action == "queue":
                self.pending.append(signum)
            elif action == "cancel":
                self.start_scope.cancel()

    def _warning(
        self, message: Warning | str, category: type[Warning], filename: str, lineno: int
    ) -> None:
        """A warning for this client, sent now, once per text and place (as a fresh CLI)."""
        key = (str(message), category, filename, lineno)
        if key in self._seen:
            return
        self._seen.add(key)
        self._backlog.append(Message("warning", {"text": warning_line(message)}))
        self._flush()

    def _flush(self) -> None:
        while self._backlog and not self.client_gone:
            try:
                send_blocking(self.channel.socket, self._backlog[0])
            except BlockingIOError:
                return  # the next _send waits for room
            except OSError:
                self.client_gone = True
                return
            del self._backlog[0]

    async def _send(self, message: Message) -> None:
        self._backlog.append(message)
        while self._backlog and not self.client_gone:
            self._flush()
            if self._backlog and not self.client_gone:
                await anyio.wait_writable(self.channel.socket)

    def _close_stdio(self) -> None:
        for fd in self.stdio:
            os.close(fd)
        self.stdio.clear()


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    """Route a warning to the client whose task raised it; others go to our stderr."""
    sink = _warning_sink.get(None)
    if sink is not None:
        sink(message, category, filename, lineno)
    else:
        print(warning_line(message), file=sys.stderr)


async def _connection(conn: socket.socket) -> None:
    channel = Channel(conn)
    fds: tuple[int, ...] = ()
    try:
        refusal = peer_refusal(peer_uid(conn), os.geteuid())
        request: Message | None = None
        if refusal is None:
            with anyio.move_on_after(REQUEST_TIMEOUT):
                request = await channel.receive()
            if request is None:
                refusal = "no request in time"
            else:
                fds = request.fds
                refusal = request_refusal(request.kind, request.fields, len(fds))
        if refusal is not None or request is None:
            with contextlib.suppress(PeerGone, OSError):
                await channel.send("refused", {"reason": refusal})
            return
        session = _Connection(channel, request.fields, fds)
        fds = ()  # the session owns them now
        await session.serve()
    except ProtocolError:
        pass  # a client that vanished or spoke garbage: nothing was started for it
    finally:
        for fd in fds:
            os.close(fd)
        channel.close()


async def _stop_on(scope: anyio.CancelScope) -> None:
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for _ in signals:
            scope.cancel()
            return


async def _serve(listener: socket.socket, ready: Callable[[], None]) -> None:
    async with anyio.create_task_group() as tg:
        tg.start_soon(_stop_on, tg.cancel_scope)
        ready()
        while True:
            await anyio.wait_readable(listener)
            try:
                conn, _ = listener.accept()
            except (BlockingIOError, ConnectionAbortedError):
                continue
            tg.start_soon(_connection, conn)


def _claim(path: str) -> None:
    """Make ``path`` free for our socket: refuse if a daemon answers, remove a stale one."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise DaemonError(f"{path} exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
    try:
        probe.connect(path)
    except ConnectionRefusedError:
        os.unlink(path)  # stale: its daemon died without removing it
        return
    except OSError as exc:
        raise DaemonError(f"{path}: {exc.strerror}: not replacing it") from None
    finally:
        probe.close()
    raise DaemonError(f"another daemon is listening on {path}")


def listen(path: str) -> socket.socket:
    """The listening socket: directory created 0700 if missing, socket 0600."""
    directory = os.path.dirname(path)
    if directory and not os.path.isdir(directory):
        os.makedirs(directory, mode=0o700)
    _claim(path)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
    old_umask = os.umask(0o177)  # no window in which the socket is open to others
    try:
        listener.bind(path)
    except BaseException:
        listener.close()
        raise
    finally:
        os.umask(old_umask)
    listener.listen(128)
    listener.setblocking(False)
    return listener


def _warm_up() -> None:
    """Pay the parent side's import and first-use costs now, not in the first request."""
    from .config import ConfigWarning, default_spec_dict, spec_from_dict
    from .parent._launcher import fork_server
    from .parent._spawn import spawn  # noqa: F401  (imports the whole parent side)

    fork_server("asyncio")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConfigWarning)
        spec_from_dict(default_spec_dict())  # builds cattrs' structuring functions


def main(path: str | None = None, *, announce: TextIO | None = None) -> int:
    """Run the daemon until SIGTERM or SIGINT; the socket is removed on the way out."""
    path = os.path.abspath(socket_path(path))
    stop = signal.signal(signal.SIGTERM, signal.default_int_handler)  # finally runs on SIGTERM
    try:
        try:
            listener = listen(path)
        except (DaemonError, OSError) as exc:
            print(f"asyncinit: error: {exc}", file=sys.stderr)
            return 1
        bound = os.stat(path)
        try:
            os.chdir("/")  # hold no directory busy for months
            _warm_up()
            from .config import ConfigWarning

            warnings.showwarning = _show_warning
            # Each client sees each warning once, as a fresh CLI would (see _warning).
            warnings.simplefilter("always", ConfigWarning)

            def ready() -> None:
                if announce is not None:
                    print(f"asyncinit: daemon listening on {path}", file=announce, flush=True)

            anyio.run(_serve, listener, ready)
        except KeyboardInterrupt:
            pass
        finally:
            listener.close()
            with contextlib.suppress(OSError):
                now = os.stat(path)
                if (now.st_dev, now.st_ino) == (bound.st_dev, bound.st_ino):
                    os.unlink(path)  # only our own socket, not a successor's
        return 0
    finally:
        signal.signal(signal.SIGTERM, stop)
