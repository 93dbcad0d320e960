"""The runc-style entry: parse, set up the log, refuse what asyncinit cannot do, dispatch.

``main(argv, handlers)`` runs one command line and returns its exit status.
The read-only commands (``state``, ``list``, ``features``, ``--version``,
``--help``) are handled here; the ones that start or change containers are
passed in by the wiring (``handlers``), which keeps this package free of the
parent and the init.  A command with no handler yet fails with a clear line.
"""

from __future__ import annotations

import sys

from .._version import VERSION
from ._args import Flag, Invocation, parse
from ._commands import (
    COMMANDS,
    EXIT_ERROR,
    EXIT_EXEC_FAILED,
    EXIT_UNKNOWN_COMMAND,
    GLOBAL_FLAGS,
    default_root,
)
from ._errors import OciError, OciUsageError, UnknownCommand
from ._log import Logger
from ._state import OCI_VERSION, live_status
from ._store import StateDir

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from typing import TextIO

    Handler = Callable[["Context"], int]


class Context:
    """What a command handler gets: the parsed line, the state directory, the log, stdout."""

    def __init__(self, invocation: Invocation, logger: Logger, stdout: TextIO) -> None:
        self.invocation = invocation
        self.args = invocation.args
        self.logger = logger
        self.stdout = stdout
        self.state_dir = StateDir(invocation.text("root") or default_root())

    def write(self, text: str) -> None:
        self.stdout.write(text)
        self.stdout.flush()


def version_text() -> str:
    """``--version``: podman shows the first line (``podman info``)."""
    return f"asyncinit version {VERSION}\nspec: {OCI_VERSION}\npython: {sys.version.split()[0]}\n"


def help_text(command: str | None) -> str:
    """``--help``: the commands and flags (runc's help text is not reproduced)."""
    if command is None:
        lines = ["USAGE:", "   asyncinit [global options] command [command options] [args...]"]
        lines += ["", "COMMANDS:", *(f"   {c.name:<11}{c.usage}" for c in COMMANDS.values())]
        lines += ["", "GLOBAL OPTIONS:", *(_flag_line(f) for f in GLOBAL_FLAGS)]
    else:
        spec = COMMANDS[command]
        lines = ["NAME:", f"   asyncinit {command} - {spec.usage}", "", "USAGE:"]
        lines += [f"   asyncinit {command} [command options] {spec.args_usage}", "", "OPTIONS:"]
        lines += [_flag_line(f) for f in spec.flags]
    return "\n".join(lines) + "\n"


def _flag_line(flag: Flag) -> str:
    names = ", ".join(("--" if len(name) > 1 else "-") + name for name in flag.names)
    return f"   {names:<24}{flag.help}"


def _state(ctx: Context) -> int:
    from ._format import state_json

    (container_id,) = ctx.args
    with ctx.state_dir.lock(container_id, exclusive=False):
        state = ctx.state_dir.load(container_id)
    ctx.write(state_json(state.spec(live_status(state))))
    return 0


def _list(ctx: Context) -> int:
    from ._errors import ContainerNotFound
    from ._format import check_format, list_output, owner_name

    fmt = ctx.invocation.text("format")
    quiet = ctx.invocation.on("quiet")
    if not quiet:
        check_format(fmt)
    documents = []
    for container_id in ctx.state_dir.ids():
        try:
            with ctx.state_dir.lock(container_id, exclusive=False):
                state = ctx.state_dir.load(container_id)
                owner = owner_name(ctx.state_dir.owner(container_id))
        except ContainerNotFound:
            continue  # deleted meanwhile
        except (OciError, OSError) as exc:
            sys.stderr.write(f"load container {container_id}: {exc}\n")
            continue
        documents.append(state.spec(live_status(state), owner))
    ctx.write(list_output(documents, fmt, quiet))
    return 0


def _features(ctx: Context) -> int:
    from .._leanjson import dumps_indented
    from ._features import features

    ctx.write(dumps_indented(features(), "    ") + "\n")
    return 0


def _version(ctx: Context) -> int:
    ctx.write(version_text())
    return 0


def _help(ctx: Context) -> int:
    ctx.write(help_text(ctx.args[0] if ctx.args else None))
    return 0


BUILTIN: dict[str, Handler] = {
    "state": _state,
    "list": _list,
    "features": _features,
    "version": _version,
    "help": _help,
}


def _refusal(invocation: Invocation) -> str | None:
    """Global flags asyncinit cannot honour: refused, never silently ignored."""
    if invocation.on("systemd-cgroup"):
        return "--systemd-cgroup: asyncinit has no systemd cgroup driver (use cgroupfs)"
    if invocation.command in ("checkpoint", "restore"):
        return f"{invocation.command}: checkpoint/restore (criu) is not supported by asyncinit"
    return None


def main(
    argv: Sequence[str],
    handlers: Mapping[str, Handler] | None = None,
    stdout: TextIO | None = None,
    prog: str = "asyncinit",
) -> int:
    """Run one runc-style command line; returns the exit status.

    ``prog`` starts usage errors, as runc's os.Args[0] does (``/usr/bin/runc: "state"
    requires exactly 1 argument(s)``): the wiring passes ``sys.argv[0]``.
    """
    out = stdout or sys.stdout
    try:
        invocation = parse(argv, COMMANDS, GLOBAL_FLAGS, prog)
        logger = Logger(
            invocation.text("log"), invocation.text("log-format"), invocation.on("debug")
        )
    except UnknownCommand as exc:
        Logger().fatal(str(exc))
        return EXIT_UNKNOWN_COMMAND
    except OciUsageError as exc:
        Logger().error(str(exc))
        return EXIT_ERROR
    except OSError as exc:  # the --log file
        sys.stderr.write(f"asyncinit: error: {exc}\n")
        return EXIT_ERROR
    try:
        return _dispatch(invocation, logger, out, handlers or {})
    finally:
        logger.close()


def _dispatch(
    invocation: Invocation, logger: Logger, out: TextIO, handlers: Mapping[str, Handler]
) -> int:
    handler = handlers.get(invocation.command) or BUILTIN.get(invocation.command)
    refusal = _refusal(invocation)
    if refusal is None and handler is None:
        refusal = f"{invocation.command}: not implemented by asyncinit yet (issue 15)"
    if refusal is not None or handler is None:
        logger.fatal(refusal or "")
        return EXIT_ERROR
    try:
        return handler(Context(invocation, logger, out))
    except Exception as exc:
        if not _reportable(exc):
            raise
        if invocation.command == "exec":
            logger.fatal(f"exec failed: {exc}")
            return EXIT_EXEC_FAILED
        if invocation.command in ("create", "run"):  # runc 1.1: "runc create failed: ..."
            logger.fatal(f"asyncinit {invocation.command} failed: {exc}")
            return EXIT_ERROR
        logger.fatal(str(exc))
        return EXIT_ERROR


def _reportable(exc: Exception) -> bool:
    """An error to report in one line; anything else is a bug and keeps its traceback."""
    if isinstance(exc, OciError | OSError):
        return True
    from .._errors import AsyncInitError  # only a failing command pays for this import

    return isinstance(exc, AsyncInitError) or type(exc).__name__ == "ConfigError"


_ASYNCINIT_OWN = ("run", "spec")  # asyncinit's commands today; the wiring decides when they move
_GLOBAL_NAMES = frozenset(name for flag in GLOBAL_FLAGS for name in flag.names) - {"help", "h"}


_RUNC_RUN_ONLY = frozenset(
    ("detach", "d", "pid-file", "console-socket", "keep", "no-subreaper", "no-new-keyring")
) | {"preserve-fds"}


def is_runc_command(argv: Sequence[str]) -> bool:
    """Whether cli.py should hand ``argv`` to :func:`main`: a runc command or global flag.

    ``run`` stays asyncinit's own (daemon, ``--backend``, ``--init``) unless it
    has a flag only runc's ``run`` knows (``--detach``, ``--pid-file``...).
    """
    for index, arg in enumerate(argv):
        if not arg.startswith("-"):
            if arg == "run":
                return any(_flag_name(a) in _RUNC_RUN_ONLY for a in argv[index + 1 :])
            return arg in COMMANDS and arg not in _ASYNCINIT_OWN
        if _flag_name(arg) in _GLOBAL_NAMES - {"debug"}:
            return True
    return False


def command_of(argv: Sequence[str]) -> str:
    """The runc command ``argv`` names (``version``/``help`` for those flags); "" if unclear."""
    from ._args import parse_flags

    try:
        options, rest = parse_flags(GLOBAL_FLAGS, argv)
    except OciUsageError:
        return ""
    if options.get("version"):
        return "version"
    if options.get("help") or not rest:
        return "help"
    return rest[0]


def _flag_name(arg: str) -> str:
    return arg.lstrip("-").partition("=")[0] if arg.startswith("-") else ""
