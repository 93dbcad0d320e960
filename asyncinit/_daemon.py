"""``asyncinit daemon``: a warm parent side that ``asyncinit run`` reaches over a unix socket.

A cold ``asyncinit run`` spends most of its time starting Python and importing
anyio, asyncio, cattrs and the parent side; ``runc run`` is one static binary.
The daemon pays for those once: it imports the parent side and starts its fork
server at start-up, then serves each connection as its own task with a warm
:func:`~asyncinit.parent._spawn.spawn` whose stdio are the client's fds.  The
client (``_client.py``) imports only the standard library.

Security model (docs/protocol.md, "Daemon"): the socket is 0600 in a 0700
directory that nobody else can write (nor any directory above it), and a peer
is served only if it could have started the container itself (``_peer.py``:
same uid and user namespace, all of our capabilities, no extra confinement).
Everything a peer sends is hostile until checked: bounded, typed, and a bad
connection ends only itself.  A client that disconnects before its container
exited (even SIGKILL) gets the container killed and reaped, poststop hooks
included.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import resource
import signal
import socket
import stat
import sys
import traceback
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TextIO, cast

import anyio
import anyio.to_thread

from ._client import FORWARDED_SIGNALS, socket_path
from ._daemon_wire import BACKENDS, RUN_FIELDS, DaemonKind, Refusal
from ._errors import unwrapped_group
from ._lines import error_line, warning_line
from ._peer import Credentials, PeerUnknown, own_credentials, peer_cred, peer_credentials
from ._peer import refusal as peer_refusal
from ._rules import INIT_MODES
from ._version import VERSION
from .sync_pipe import Channel, Message, PeerGone, ProtocolError, send_blocking

if TYPE_CHECKING:
    from ._daemon_wire import RunRequest
    from .parent._container import Container

#: How long a new connection may take to send its request before it is dropped.
REQUEST_TIMEOUT = 10.0
#: How long a declined peer's request is awaited, so that closing does not reset
#: the connection under our answer (an unread datagram makes close() an ECONNRESET).
DRAIN_TIMEOUT = 1.0
#: Connections still waiting for their request: per peer process, and in all (at
#: most a quarter of RLIMIT_NOFILE: idle peers must leave fds for the containers).
MAX_WAITING_PER_PEER = 8
MAX_WAITING = 64
#: How long a message to a client may wait for room in its socket.
SEND_TIMEOUT = 10.0
#: How long accept() rests after failing for want of fds or memory.
ACCEPT_BACKOFF = 0.1
#: Free fds that make room for a start (the client's socket and stdio, config.json,
#: the sockets to the init, its pidfd, hooks' pipes): once accept() failed for want
#: of fds, the backlog waits until that many are free.
START_FDS = 16
#: How long opening config.json may take (a hung network or FUSE filesystem).
CONFIG_OPEN_TIMEOUT = 10.0
#: Signals a client may ask us to deliver (SIGINT cancels a start still in progress).
ALLOWED_SIGNALS = frozenset((*FORWARDED_SIGNALS, signal.SIGINT))

#: Where warnings raised in a connection's task go (ConfigWarnings during spawn()).
_warning_sink: contextvars.ContextVar[Callable[[Warning | str, type[Warning], str, int], None]] = (
    contextvars.ContextVar("asyncinit_warning_sink")
)


class DaemonError(Exception):
    """The daemon cannot start (another one answers, the path is not ours to replace)."""


def request_refusal(kind: str, fields: Mapping[str, Any], fd_count: int) -> str | None:
    """Why a request cannot be served (the client then runs in-process), or None.

    Typed: every field present, of its exact JSON type, nothing else (the
    client's version matches ours, so it sends exactly these).
    """
    if kind != DaemonKind.RUN:
        return Refusal.UNKNOWN_REQUEST.format(kind=kind[:80])
    if (version := fields.get("version")) != VERSION:
        # Named, not shown, unless a string: a repr of deep nesting would raise.
        theirs = repr(version[:80]) if isinstance(version, str) else type(version).__name__
        return Refusal.VERSION_MISMATCH.format(ours=VERSION, theirs=theirs)
    if fd_count != 3:
        return Refusal.FD_COUNT.format(count=fd_count)
    if unknown := sorted(set(fields) - set(RUN_FIELDS)):
        return Refusal.UNKNOWN_FIELDS.format(names=", ".join(unknown))[:200]
    bad = [name for name, ok in _field_checks(fields).items() if not ok]
    return Refusal.MALFORMED_FIELDS.format(names=", ".join(bad)) if bad else None


def _field_checks(fields: Mapping[str, Any]) -> dict[str, bool]:
    """Each field: of its type, then of its values (a bundle: absolute, no NUL, PATH_MAX)."""
    typed = {
        name: name in fields and type(fields[name]) in types
        for name, types in RUN_FIELDS.items()
    }
    if not all(typed.values()):
        return typed
    bundle = fields["bundle"]
    return {
        "bundle": os.path.isabs(bundle) and "\0" not in bundle and len(bundle) < 4096,
        "id": "\0" not in fields["id"],
        "backend": fields["backend"] in BACKENDS,
        "init": fields["init"] is None or fields["init"] in INIT_MODES,
        "console_size": _is_console_size(fields["console_size"]),
    }


def _console_size(value: Sequence[int] | None) -> tuple[int, int] | None:
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

    def __init__(self, channel: Channel, fields: RunRequest, stdio: tuple[int, ...]) -> None:
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
            await self._send(Message(DaemonKind.ERROR, {"text": error, "code": code}))
        else:
            await self._send(Message(DaemonKind.EXIT, {"code": code}))

    async def _run(self) -> tuple[int, str | None]:
        from .parent._spawn import spawn

        fields = self.fields
        config = os.path.join(fields["bundle"], "config.json")
        try:
            try:
                with self.start_scope:
                    await _open_in_time(config)
                    self.container = await spawn(
                        config,
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
                    await self._send(Message(DaemonKind.PTY, fds=[container.pty.fd]))
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
            if message.kind != DaemonKind.SIGNAL or type(signum) is not int:  # true is no SIGHUP
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
        self._backlog.append(Message(DaemonKind.WARNING, {"text": warning_line(message)}))
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
        """Send, waiting for room at most SEND_TIMEOUT: a client that stops reading
        is gone (it would hold this task and its fd for ever)."""
        self._backlog.append(message)
        with anyio.move_on_after(SEND_TIMEOUT) as scope:
            while self._backlog and not self.client_gone:
                self._flush()
                if self._backlog and not self.client_gone:
                    await anyio.wait_writable(self.channel.socket)
        if scope.cancelled_caught:
            self.client_gone = True

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
        _log(warning_line(message))


async def _open_in_time(path: str) -> None:
    """Open (and close) ``path`` in a worker thread, within CONFIG_OPEN_TIMEOUT.

    spawn() loads config.json on the event loop: ``load_config`` refuses a FIFO
    or a device without blocking, but opening a file on a hung NFS or FUSE
    mount would stall every client.  A stuck thread is abandoned.
    """

    def probe() -> None:
        with contextlib.suppress(OSError):  # load_config reports it
            os.close(os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC))

    with anyio.move_on_after(CONFIG_OPEN_TIMEOUT) as scope:
        await anyio.to_thread.run_sync(probe, abandon_on_cancel=True)
    if scope.cancelled_caught:
        from .config import ConfigError

        message = f"config.json: still not open after {CONFIG_OPEN_TIMEOUT:g} s"
        raise ConfigError([message])


class _Gate:
    """Who may use us (our own credentials), and the connections still waiting to ask."""

    def __init__(self, own: Credentials) -> None:
        self.own = own
        self.waiting: dict[int, int] = {}  # peer pid -> its connections without a request yet
        fds, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        self.max_waiting = max(1, min(MAX_WAITING, fds // 4))

    @contextlib.contextmanager
    def wait_slot(self, pid: int) -> Iterator[bool]:
        """Count a connection waiting for its request; False when its peer has too many."""
        admitted = (
            sum(self.waiting.values()) < self.max_waiting
            and self.waiting.get(pid, 0) < MAX_WAITING_PER_PEER
        )
        if admitted:
            self.waiting[pid] = self.waiting.get(pid, 0) + 1
        try:
            yield admitted
        finally:
            if admitted:
                self.waiting[pid] -= 1
                if not self.waiting[pid]:
                    del self.waiting[pid]

    def refusal(self, conn: socket.socket) -> str | None:
        """Why the peer may not start containers through us, or None."""
        try:
            return peer_refusal(peer_credentials(conn), self.own)
        except PeerUnknown as exc:
            return str(exc)
        except OSError as exc:
            return f"cannot check the client's credentials: {exc.strerror or exc}"


async def _request(channel: Channel, gate: _Gate) -> Message | None:
    """The peer's run request, or None once it has been refused (and told why)."""
    pid, _ = peer_cred(channel.socket)
    with gate.wait_slot(pid) as admitted:
        if not admitted:
            await _refuse(channel, Refusal.TOO_MANY_WAITING.format(pid=pid))
            return None
        refusal = gate.refusal(channel.socket)
        request: Message | None = None
        # A declined peer's request is read too (and dropped): closing with it
        # unread would reset the connection, and the client would never see why.
        with anyio.move_on_after(REQUEST_TIMEOUT if refusal is None else DRAIN_TIMEOUT):
            try:
                request = await channel.receive()
            except PeerGone:
                return None
            except ProtocolError as exc:
                refusal = refusal or Refusal.MALFORMED_REQUEST.format(error=exc)
        if request is not None:
            refusal = refusal or request_refusal(request.kind, request.fields, len(request.fds))
            if refusal is not None:
                _close_all(request.fds)
        elif refusal is None:
            refusal = Refusal.NO_REQUEST
    if refusal is not None:
        await _refuse(channel, refusal)
        return None
    return request


async def _refuse(channel: Channel, reason: str) -> None:
    with contextlib.suppress(ProtocolError, OSError), anyio.move_on_after(DRAIN_TIMEOUT):
        await channel.send(DaemonKind.REFUSED, {"reason": reason})


def _close_all(fds: Iterable[int]) -> None:
    for fd in fds:
        os.close(fd)


async def _connection(conn: socket.socket, gate: _Gate) -> None:
    """One client, from accept to close: whatever it does, it ends only itself."""
    channel = Channel(conn, max_spill=0)  # a run request is small: no memfd from a peer
    try:
        request = await _request(channel, gate)
        if request is not None:
            fields = cast("RunRequest", request.fields)  # as request_refusal checked
            await _Connection(channel, fields, request.fds).serve()
    except ProtocolError:
        pass  # a client that vanished or spoke garbage mid-run: its container is gone too
    except Exception as exc:  # a bug of ours: this client's loss, not everybody's
        _log(f"asyncinit: internal error serving a client: {type(exc).__name__}: {exc}")
    finally:
        channel.close()


def free_fds() -> int:
    """How many more fds this process may open now (RLIMIT_NOFILE minus those open)."""
    limit, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        return limit - len(os.listdir("/proc/self/fd"))  # the listing's own fd counts too
    except OSError:  # EMFILE: none
        return 0


def _log(line: str) -> None:
    with contextlib.suppress(OSError, ValueError):
        print(line, file=sys.stderr, flush=True)


async def _stop_on(scope: anyio.CancelScope) -> None:
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for _ in signals:
            scope.cancel()
            return


async def _serve(listener: socket.socket, gate: _Gate, ready: Callable[[], None]) -> None:
    async with anyio.create_task_group() as tg:
        tg.start_soon(_stop_on, tg.cancel_scope)
        ready()
        starved = False
        # Room for a start, or all we will ever have with every idle peer connected.
        room_for_a_start = max(1, min(START_FDS, free_fds() - gate.max_waiting))
        while True:
            await anyio.wait_readable(listener)
            if starved and free_fds() < room_for_a_start:
                # A client accepted now would fail to start for want of fds: let it
                # wait in the backlog until finished ones have made room.
                await anyio.sleep(ACCEPT_BACKOFF)
                continue
            try:
                conn, _ = listener.accept()
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                continue
            except OSError as exc:
                # EMFILE, ENFILE, ENOBUFS, ENOMEM: the connection waits in the backlog
                # until a finished one frees what it needs; rest instead of spinning.
                if not starved:
                    _log(f"asyncinit: warning: accept: {exc.strerror or exc}; retrying")
                starved = True
                await anyio.sleep(ACCEPT_BACKOFF)
                continue
            starved = False
            tg.start_soon(_connection, conn, gate)


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


def _components(path: str) -> list[str]:
    """``/a/b`` -> ``["/", "/a", "/a/b"]``."""
    parts = [part for part in path.split("/") if part]
    return ["/"] + ["/" + "/".join(parts[: n + 1]) for n in range(len(parts))]


def unsafe_directory(directory: str, euid: int) -> str | None:
    """Why someone but root or us could replace a socket in ``directory``, or None.

    Every directory from ``/`` down, as written (a symlink on the way must be
    ours too) and as resolved, must be owned by root or us and writable by no
    one else; above the socket's own directory a sticky one (``/tmp``) is fine:
    others cannot rename or remove our entries in it.
    """
    real = os.path.realpath(directory)
    for path in dict.fromkeys([*_components(directory), *_components(real)]):
        info = os.lstat(path)
        if info.st_uid not in (0, euid):
            return f"{path} belongs to uid {info.st_uid}"
        if stat.S_ISLNK(info.st_mode):
            continue  # its target is among the resolved components
        writable = info.st_mode & 0o022
        if writable and (path == real or not info.st_mode & stat.S_ISVTX):
            return f"{path} is writable by others (mode {stat.S_IMODE(info.st_mode):04o})"
    return None


def listen(path: str) -> socket.socket:
    """The listening socket: directory created 0700 if missing, socket 0600.

    Refused (DaemonError) under a directory someone else could write: they could
    rename our socket away and bind theirs in its place.
    """
    directory = os.path.dirname(path) or "."
    if not os.path.isdir(directory):
        old_umask = os.umask(0o077)  # the parents it creates too
        try:
            os.makedirs(directory, mode=0o700)
        finally:
            os.umask(old_umask)
    if unsafe := unsafe_directory(os.path.abspath(directory), os.geteuid()):
        raise DaemonError(f"{unsafe}: refusing to put the daemon's socket under it")
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
            gate = _Gate(own_credentials())
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
                if announce is None:
                    return
                try:
                    print(f"asyncinit: daemon listening on {path}", file=announce, flush=True)
                except (OSError, ValueError) as exc:  # stdout /dev/full, closed...
                    raise DaemonError(f"cannot announce on stdout: {exc}") from None

            with unwrapped_group():
                anyio.run(_serve, listener, gate, ready)
        except KeyboardInterrupt:
            pass
        except DaemonError as exc:
            print(f"asyncinit: error: {exc}", file=sys.stderr)
            return 1
        finally:
            listener.close()
            with contextlib.suppress(OSError):
                now = os.stat(path)
                if (now.st_dev, now.st_ino) == (bound.st_dev, bound.st_ino):
                    os.unlink(path)  # only our own socket, not a successor's
        return 0
    finally:
        signal.signal(signal.SIGTERM, stop)
