"""The daemon's wire: message types, their fields, refusal reasons (docs/protocol.md, "Daemon").

The lean client (``_client.py``) imports this on every ``asyncinit run``, the
daemon (``_daemon.py``) too, so that mypy sees both ends of every message.  So
it imports nothing at run time (not even ``typing``, a millisecond the client
does not have): ``Final`` and the TypedDicts exist for the type checker only.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Final, TypedDict


class DaemonKind:
    """Message types on a daemon connection.  ``->`` gives the direction."""

    RUN: Final = "run"  # client -> daemon, with fds 0, 1, 2: RunRequest; first and only request
    SIGNAL: Final = "signal"  # client -> daemon: {"signo"}, a signal the client caught
    REFUSED: Final = "refused"  # daemon -> client: {"reason"} (a Refusal); the client runs it
    WARNING: Final = "warning"  # daemon -> client: {"text"}, a line for the client's stderr
    PTY: Final = "pty"  # daemon -> client: the pty master (process.terminal), no fields
    EXIT: Final = "exit"  # daemon -> client: {"code"}, the container's exit code
    ERROR: Final = "error"  # daemon -> client: {"text", "code"}, the start or the wait failed


#: The fields of ``run`` and the JSON types each may have (exactly: no bool for an int).
#: The same names as :class:`RunRequest` (``tests/integration/test_daemon.py`` pins the
#: two together).
RUN_FIELDS: Final = {
    "version": (str,),
    "bundle": (str,),
    "id": (str,),
    "backend": (str,),
    "init": (str, type(None)),
    "signal_group": (bool, type(None)),
    "no_pivot": (bool,),
    "debug": (bool,),
    "console_size": (list, type(None)),
}

#: Event loops a ``run`` request may name for the init.
BACKENDS: Final = ("asyncio", "trio")


class Refusal:
    """The ``reason`` of ``refused``, as ``str.format`` templates: the client prints it
    (``the daemon declined: ...``) and runs the container in-process.  A peer whose
    credentials fall short gets ``_peer.refusal``'s text instead."""

    UNKNOWN_REQUEST: Final = "unknown request {kind!r}"
    VERSION_MISMATCH: Final = "version mismatch: daemon {ours}, client {theirs}"
    FD_COUNT: Final = "a run request carries fds 0, 1 and 2, got {count} fds"
    UNKNOWN_FIELDS: Final = "unknown fields: {names}"
    MALFORMED_FIELDS: Final = "malformed fields: {names}"
    MALFORMED_REQUEST: Final = "malformed request: {error}"
    NO_REQUEST: Final = "no request in time"
    TOO_MANY_WAITING: Final = "too many connections waiting from pid {pid}"


if TYPE_CHECKING:

    class RunRequest(TypedDict):
        """``run``'s fields (``type`` aside), as the client builds them."""

        version: str
        #: absolute: the daemon has its own cwd
        bundle: str
        id: str
        #: one of BACKENDS
        backend: str
        #: one of _rules.INIT_MODES, or None: the config's annotation decides
        init: str | None
        signal_group: bool | None
        no_pivot: bool
        debug: bool
        #: [rows, columns] of the client's terminal: the pty's size without process.consoleSize
        console_size: Sequence[int] | None
