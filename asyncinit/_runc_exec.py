"""``asyncinit exec``: runc 1.1's ``exec`` command on a container of the state directory.

runc's checks and messages, in runc's order (a missing container, a stopped
one, a paused one without ``--ignore-paused``, empty args, the tty/detach/
console-socket rules), then the process: the ``--process`` file, or the
container's own ``process`` (its bundle's config.json) with the command line's
changes.  The plan is decided by ``parent/_exec.py`` and carried out by
``forkserver/_exec.py`` from this very process, so the exec'd process is our
child (conmon waits for it).  ``--detach``: return once it runs (the pid file
written, no newline); otherwise forward every signal to it, proxy its pty if it
has one, and exit with its exit code (128 + N for signal N).  Any failure
before the process runs: ``exec failed: ...``, exit 255 (oci/_main.py).
"""

from __future__ import annotations

import contextlib
import os
import socket

from .oci._errors import OciError
from .oci._state import live_status

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from ._plan import ExecPlan
    from .config import Process
    from .oci._main import Context
    from .oci._state import State


def _check_status(ctx: Context, state: State) -> None:
    status = live_status(state)
    if status == "stopped":
        raise OciError("cannot exec in a stopped container")
    if status == "paused" and not ctx.invocation.on("ignore-paused"):
        raise OciError("cannot exec in a paused container (use --ignore-paused to override)")


def _parse_user(text: str) -> tuple[int, int | None]:
    """runc's ``<uid>[:<gid>]`` (strconv.Atoi messages)."""
    uid_text, colon, gid_text = text.partition(":")
    gid = None
    if colon:
        gid = _atoi(gid_text, "gid")
    return _atoi(uid_text, "uid"), gid


def _atoi(text: str, what: str) -> int:
    try:
        return int(text, 10)
    except ValueError:
        raise OciError(
            f'parsing {text} as int for {what} failed: strconv.Atoi: parsing "{text}": '
            "invalid syntax"
        ) from None


def _gids(values: list[str]) -> list[int]:
    gids = [int(value) for value in values]
    for gid in gids:
        if gid < 0:
            raise OciError(f"additional-gids must be a positive number {gid}")
    return gids


def _known_caps(ctx: Context, names: list[str]) -> list[str]:
    """runc: unknown capabilities are warned about and ignored."""
    from .config import CAPABILITIES

    unknown = [name for name in names if name not in CAPABILITIES]
    if unknown:
        ctx.logger.warning(f"ignoring unknown or unavailable capabilities: [{' '.join(unknown)}]")
    return [name for name in names if name in CAPABILITIES]


def _bundle_process(bundle: str) -> Process:
    """The bundle's ``process``, read now: runc exec without ``--process`` re-reads it."""
    from .config._read import read_json
    from .parent._exec import process_from_json

    path = os.path.join(bundle, "config.json")
    if not os.path.exists(path):
        raise OciError("JSON specification file config.json not found")
    data = read_json(path)
    if not isinstance(data, dict) or data.get("process") is None:
        raise OciError(f"{path}: process: required by exec without --process")
    return process_from_json(data["process"], "process")


def _process(ctx: Context, state: State) -> Process:
    """The process to run: the ``--process`` file, or the bundle's with the flags' changes.

    Everything else (seccomp, the defaults of unset fields) is the container's as
    created, from the state (``parent._exec.recorded_spec``), as runc's saved config.
    """
    from .config._read import read_json
    from .parent._exec import process_from_args, process_from_json

    inv = ctx.invocation
    if inv.text("process"):  # as runc: the file alone, the process flags unused
        return process_from_json(read_json(inv.text("process")), "process")
    if inv.text("cwd") and not inv.text("cwd").startswith("/"):
        raise OciError("Cwd must be an absolute path")
    process = process_from_args(
        _bundle_process(state.bundle),
        ctx.args[1:],
        env=inv.strings("env"),
        cwd=inv.text("cwd") or None,
        user=_parse_user(inv.text("user")) if inv.text("user") else None,
        additional_gids=_gids(inv.strings("additional-gids")),
        terminal=inv.on("tty"),
        no_new_privileges=True if inv.on("no-new-privs") else None,
        caps=_known_caps(ctx, inv.strings("cap")),
    )
    if inv.text("apparmor") or inv.text("process-label"):
        import attrs

        process = attrs.evolve(
            process,
            apparmor_profile=inv.text("apparmor") or process.apparmor_profile,
            selinux_label=inv.text("process-label") or process.selinux_label,
        )
    return process


def _check_terminal(ctx: Context, terminal: bool) -> None:
    detach, console = ctx.invocation.on("detach"), ctx.invocation.text("console-socket")
    if detach and terminal and not console:
        raise OciError("cannot allocate tty if runc will detach without setting console socket")
    if (not detach or not terminal) and console:
        raise OciError("cannot use console socket if runc will not detach or allocate tty")


def _connect_console(path: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        sock.connect(path)
    except OSError:
        sock.close()
        raise
    return sock


def _plan(ctx: Context) -> ExecPlan:
    """runc's checks in runc's order, then the plan (under the container's shared lock)."""
    from .parent._exec import exec_plan, recorded_spec
    from .parent._exec_cgroups import parse_sub_cgroups

    inv = ctx.invocation
    container_id = ctx.args[0]
    with ctx.state_dir.lock(container_id, exclusive=False):
        state = ctx.state_dir.load(container_id)
        _check_status(ctx, state)
        if not inv.text("process") and len(ctx.args) == 1:
            raise OciError("process args cannot be empty")
        sub_cgroups = parse_sub_cgroups(inv.strings("cgroup"))
        process = _process(ctx, state)
        _check_terminal(ctx, process.terminal)
        return exec_plan(
            recorded_spec(state.extra, state.bundle),
            process,
            state.pid,
            state.pid_start,
            pass_fds=inv.number("preserve-fds"),
            sub_cgroups=sub_cgroups,
        )


def exec_command(ctx: Context, write_pid_file: Callable[[str, int], None]) -> int:
    from ._errors import InitError
    from .forkserver._exec import forward_signals, start, wait_exit_code

    inv = ctx.invocation
    plan = _plan(ctx)
    console = _connect_console(inv.text("console-socket")) if inv.text("console-socket") else None
    try:
        try:
            child = start(plan)
        except InitError as exc:
            raise OciError(f"unable to start container process: {exc}") from exc
        if child.pty_master is not None and console is not None:
            socket.send_fds(console, [b"/dev/ptmx"], [child.pty_master])
    finally:
        if console is not None:
            console.close()
    if inv.text("pid-file"):
        write_pid_file(inv.text("pid-file"), child.pid)
    if inv.on("detach"):
        if child.pty_master is not None:
            os.close(child.pty_master)
        return 0
    forward_signals(child.pid)
    if child.pty_master is not None:
        _proxy_terminal(child.pty_master)
    return wait_exit_code(child.pid)


def _proxy_terminal(master: int) -> None:
    """Foreground ``--tty``: our stdin to the pty, the pty to our stdout, until it hangs up."""
    import select
    import termios
    import tty

    saved = None
    if os.isatty(0):
        saved = termios.tcgetattr(0)
        tty.setraw(0)
    try:
        sources = [master, 0]
        while True:
            with contextlib.suppress(InterruptedError):
                readable, _, _ = select.select(sources, [], [])
            if master in readable:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: every slave fd closed
                    data = b""
                if not data:
                    break
                os.write(1, data)
            if 0 in readable:
                data = os.read(0, 65536)
                if data:
                    os.write(master, data)
                else:
                    sources.remove(0)
    finally:
        os.close(master)
        if saved is not None:
            termios.tcsetattr(0, termios.TCSADRAIN, saved)
