"""The ``asyncinit`` command: run, spec, demo, daemon, and init (PID 1's entry point).

Imports are lazy: ``asyncinit init`` must not pay for cattrs or the parent's
modules, no subcommand imports trio unless asked to, and ``asyncinit run``
through a daemon imports only the standard library (not even argparse for the
plain spellings: see ``_quick_run``).
"""

from __future__ import annotations

import os
import sys

from ._lines import error_line, warning_line
from ._stdio import ensure_stdio

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing and argparse cost milliseconds the daemon path does not have
    import argparse
    import asyncio
    import signal as _signal  # _signal has no stubs; the same functions and constants
    from collections.abc import Awaitable, Callable, Sequence
    from typing import Any, NoReturn, TextIO, TypeVar

    T = TypeVar("T")
else:
    import _signal  # not signal: its enums cost the lean client path milliseconds

DEMO_SCRIPT = (
    'echo "PID $$ in the container, hostname $(hostname)"; '
    'echo "--- mounts (/proc/self/mountinfo)"; cat /proc/self/mountinfo; '
    'echo "--- /dev"; ls -l /dev'
)


def _parser() -> argparse.ArgumentParser:
    import argparse

    class Parser(argparse.ArgumentParser):  # its subparsers are of its class too
        def error(self, message: str) -> NoReturn:
            """A usage error is one line, as every other error; the usage is --help."""
            command = self.prog.removeprefix("asyncinit").strip()
            where = f"{command}: " if command else ""
            self.exit(2, f"asyncinit: error: {where}{message} (see {self.prog} --help)\n")

    parser = Parser(prog="asyncinit", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a container from a bundle, like `runc run`")
    run.add_argument("-b", "--bundle", default=".", help="bundle directory (default: .)")
    run.add_argument(
        "--backend",
        choices=("asyncio", "trio"),
        default="asyncio",
        help="event loop of the init (default: asyncio)",
    )
    run.add_argument(
        "--init", action="store_true", help="keep asyncinit as PID 1: reap orphans, forward signals"
    )
    run.add_argument(
        "--signal-group",
        action="store_true",
        help="with --init: forward signals to the workload's process group",
    )
    run.add_argument(
        "--no-pivot",
        action="store_true",
        help="jail with MS_MOVE + chroot instead of pivot_root (runc run --no-pivot)",
    )
    run.add_argument(
        "--no-daemon",
        action="store_true",
        help="run in this process even if `asyncinit daemon` listens (also ASYNCINIT_DAEMON=0)",
    )
    run.add_argument("id", help="container id")

    daemon = sub.add_parser(
        "daemon", help="serve `asyncinit run` from a warm process over a unix socket"
    )
    daemon.add_argument(
        "--socket",
        help="socket path (default: $ASYNCINIT_SOCKET, else /run/asyncinit-daemon/asyncinit.sock)",
    )

    spec = sub.add_parser("spec", help="write a default config.json, like `runc spec`")
    spec.add_argument("--rootless", action="store_true", help="a config for a user namespace")
    spec.add_argument("-b", "--bundle", default=".", help="where to write config.json")

    demo = sub.add_parser("demo", help="run a shell in a tiny rootfs built on the fly")
    demo.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio")

    init = sub.add_parser("init", help="be PID 1 of a container (started by a parent)")
    init.add_argument("--sync-fd", type=int, required=True, help="fd of the sync socket")
    init.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio")
    return parser


async def _run_bundle(
    bundle: str,
    container_id: str,
    backend: str,
    config: dict[str, Any] | None = None,
    init: str | None = None,
    signal_group: bool | None = None,
    no_pivot_root: bool = False,
) -> int:
    import anyio

    from ._attach import attach_terminal, forward_interrupts, forward_signals
    from ._client import FORWARDED_SIGNALS, terminal_size
    from ._errors import unwrapped_group
    from .parent._spawn import spawn

    source: Any = config if config is not None else os.path.join(bundle, "config.json")
    with anyio.open_signal_receiver(*FORWARDED_SIGNALS) as signals:
        container = await spawn(
            source,
            bundle=bundle,
            container_id=container_id,
            backend=backend,
            init=init,
            signal_group=signal_group,
            no_pivot_root=no_pivot_root,
            console_size=terminal_size(),
        )
        # wait() failing (the fork server died...) is one error, not an ExceptionGroup.
        with unwrapped_group():
            async with container, anyio.create_task_group() as tg:
                tg.start_soon(forward_signals, container, signals)
                tg.start_soon(forward_interrupts, container)
                if container.pty is not None:
                    code = await attach_terminal(container)
                else:
                    code = await container.wait()
                tg.cancel_scope.cancel()
    for warning in container.warnings:
        print(f"asyncinit: warning: {warning}", file=sys.stderr)
    return code


def _spec(bundle: str, rootless: bool) -> int:
    import json

    from .config import default_spec_dict

    path = os.path.join(bundle, "config.json")
    text = json.dumps(default_spec_dict(rootless=rootless), indent="\t") + "\n"
    try:
        # O_EXCL: never through a symlink, never over a file created meanwhile.
        with open(path, "x") as f:
            try:
                f.write(text)
                f.flush()
            except BaseException:
                os.unlink(path)  # no half-written config left behind (ENOSPC...)
                raise
    except FileExistsError:
        print(f"asyncinit: error: {path} already exists", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"asyncinit: error: cannot write {path}: {exc.strerror}", file=sys.stderr)
        return 1
    return 0


def _demo(backend: str) -> int:
    import tempfile
    import warnings
    from pathlib import Path

    from ._demo import build_demo_rootfs
    from .config import ConfigWarning, default_spec_dict

    with tempfile.TemporaryDirectory(prefix="asyncinit-demo-") as bundle:
        extra_mounts = build_demo_rootfs(Path(bundle) / "rootfs")
        config = default_spec_dict()
        config["process"].update(terminal=False, args=["sh", "-c", DEMO_SCRIPT])
        config["hostname"] = "asyncinit-demo"
        config["mounts"].extend(extra_mounts)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConfigWarning)
            return _run_loop(_run_bundle, bundle, "demo", backend, config)


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    """Warnings as the CLI's own one-line messages, not Python's file:line form."""
    print(warning_line(message), file=sys.stderr)


class _RunArgs:
    """What argparse would give for ``run``, from :func:`_quick_run`."""

    command = "run"

    def __init__(self, debug: bool) -> None:
        self.debug = debug
        self.bundle = "."
        self.backend = "asyncio"
        self.init = self.signal_group = self.no_pivot = self.no_daemon = False
        self.id = ""


_RUN_FLAGS = {
    "--init": "init",
    "--signal-group": "signal_group",
    "--no-pivot": "no_pivot",
    "--no-daemon": "no_daemon",
}


def _quick_run(argv: Sequence[str]) -> _RunArgs | None:
    """``[--debug] run [options] ID`` in its plain spellings, parsed without argparse.

    argparse (with re and gettext) costs ~10 ms of a ~30 ms daemon run.  Anything
    else (help, abbreviations, ``-bDIR``, ``--``, a value starting with ``-``, an
    error) gives None, and argparse decides as before.
    """
    args = _RunArgs(debug=argv[:1] == ["--debug"])
    rest = list(argv[1:] if args.debug else argv)
    if rest[:1] != ["run"]:
        return None
    rest.pop(0)
    seen_id = False
    while rest:
        arg = rest.pop(0)
        name, eq, value = arg.partition("=")
        if name in ("-b", "--bundle", "--backend") and not (eq and name == "-b"):
            if not eq:
                if not rest or rest[0].startswith("-"):
                    return None
                value = rest.pop(0)
            if name == "--backend":
                if value not in ("asyncio", "trio"):
                    return None
                args.backend = value
            else:
                args.bundle = value
        elif arg in _RUN_FLAGS:
            setattr(args, _RUN_FLAGS[arg], True)
        elif arg.startswith("-") or seen_id:
            return None
        else:
            args.id, seen_id = arg, True
    return args if seen_id else None


def _through_daemon(args: _RunArgs | argparse.Namespace) -> int | None:
    """``asyncinit run`` by a running daemon; None to run in-process (none answered)."""
    from ._client import Refused, daemon_allowed, run_request, run_via_daemon, socket_path

    if not daemon_allowed(args.no_daemon):
        return None

    request = run_request(
        args.bundle,
        args.id,
        backend=args.backend,
        init="supervise" if args.init else None,
        signal_group=True if args.signal_group else None,
        no_pivot=args.no_pivot,
        debug=args.debug,
    )
    try:
        return run_via_daemon(request, socket_path())
    except KeyboardInterrupt:
        return 130  # Ctrl-C before the session caught signals: nothing was started
    except Refused as exc:
        if args.debug:
            print(f"asyncinit: debug: {exc}; running in-process", file=sys.stderr)
        return None


def main(argv: Sequence[str] | None = None) -> int:
    """The ``asyncinit`` command (``argv`` None: this process's own command line).

    Ctrl-C before the container runs (while Python imports, parses, starts the fork
    server, loads the config, starts the container) exits 130 without a traceback;
    once the container runs, it is forwarded to it.
    """
    global _interruptible
    own = argv is None
    code = 130
    try:  # before any call: Python runs a pending signal's handler after each one
        if own:
            _signal.signal(_signal.SIGINT, _interrupt)
            ensure_stdio()
        code = _command(sys.argv[1:] if argv is None else list(argv), own)
    except KeyboardInterrupt:
        pass
    # Reached without a call since the try (no point where Python runs a signal
    # handler): a Ctrl-C from now on, in the interpreter's teardown too, is ignored.
    _interruptible = False
    return code


#: False once main() has its exit code: see _interrupt.
_interruptible = True


def _interrupt(signum: int, frame: object) -> None:
    """SIGINT outside an event loop: KeyboardInterrupt, until the exit code is decided."""
    if _interruptible:
        raise KeyboardInterrupt


def _command(arguments: list[str], own: bool) -> int:
    from .oci import is_runc_command

    runc = is_runc_command(arguments)  # runc's command line (asyncinit/oci, docs/cli.md)
    args: Any = None if runc else _quick_run(arguments) or _parser().parse_args(arguments)
    if own and (runc or args.command in ("init", "daemon")):
        _signal.signal(_signal.SIGINT, _signal.default_int_handler)  # they handle their own
    if runc:
        from ._runc import main as runc_main

        return runc_main(arguments, sys.argv[0] if own else "asyncinit")
    if args.command != "run":  # run: the daemon's client needs no site (see _launch)
        from ._site import ensure_site

        ensure_site()
    if args.command == "init":
        from .init._entry import main as init_main

        problem = _not_a_socket(args.sync_fd)
        if problem:
            print(f"asyncinit: error: --sync-fd {args.sync_fd}: {problem}", file=sys.stderr)
            return 1
        init_main(args.sync_fd, args.backend)
    code = _through_daemon(args) if args.command == "run" else None
    if code is not None and own:
        _exit_now(code)
    if code is None:
        from ._site import ensure_site

        ensure_site()
    return code if code is not None else _in_process(args)


def _not_a_socket(fd: int) -> str | None:
    """Why ``fd`` cannot be the init's sync socket, or None."""
    import errno
    import stat

    try:
        mode = os.fstat(fd).st_mode
    except OSError as exc:
        return exc.strerror or str(exc)
    except OverflowError:  # a number no fd can have
        return os.strerror(errno.EBADF)
    return None if stat.S_ISSOCK(mode) else "not a socket"


def _exit_now(code: int) -> NoReturn:
    """The command's own process, served by the daemon: exit without the teardown.

    Nothing is left to clean up (no fork server, no atexit handler: the client
    imports only the standard library), and the interpreter's finalization would
    add ~8 ms, a quarter of a container's whole start.
    """
    for stream in (sys.stdout, sys.stderr):
        try:  # noqa: SIM105  (contextlib is an import this path does without)
            stream.flush()
        except (OSError, ValueError):
            pass  # a closed or broken stream: nothing more can reach it
    os._exit(code)


def _in_process(args: Any) -> int:  # noqa: ANN401  (a Namespace or _RunArgs)
    """``run``, ``spec``, ``demo`` and ``daemon`` in this process: an error is one line."""
    import warnings

    warnings.showwarning = _show_warning
    try:
        if args.command == "daemon":
            from ._daemon import main as daemon_main

            return daemon_main(args.socket, announce=sys.stdout)
        if args.command == "spec":
            return _spec(args.bundle, args.rootless)
        if args.command == "demo":
            return _demo(args.backend)
        # Start the fork server now: it imports the init's modules while we load the config.
        from .parent._launcher import fork_server

        fork_server(args.backend)
        init = "supervise" if args.init else None
        signal_group = True if args.signal_group else None
        return int(
            _run_loop(
                _run_bundle,
                args.bundle,
                args.id,
                args.backend,
                None,
                init,
                signal_group,
                args.no_pivot,
            )
        )
    except Exception as exc:
        if args.debug:
            raise
        print(error_line(exc), file=sys.stderr)
        return 1


def _run_loop(func: Callable[..., Awaitable[T]], *args: object) -> T:
    """``anyio.run``, with Ctrl-C as asyncio's runner handles it: the main task is cancelled.

    The runner takes SIGINT over only from Python's own handler, so that one is back
    for the loop's life.  Failing to create the loop (out of fds) is one error line.
    """
    import anyio

    ours = _signal.getsignal(_signal.SIGINT)
    if ours is _interrupt:
        _signal.signal(_signal.SIGINT, _signal.default_int_handler)
    try:
        return anyio.run(func, *args, backend_options={"loop_factory": _new_event_loop})
    finally:
        if ours is _interrupt:
            _signal.signal(_signal.SIGINT, _interrupt)


def _new_event_loop() -> asyncio.AbstractEventLoop:
    import asyncio

    from ._errors import failing_as

    with failing_as("launch", "create the event loop"):
        try:
            return asyncio.new_event_loop()
        except OSError as exc:
            # CPython's half-built loop complains from __del__ (it has no self-pipe):
            # free it now, with that complaint silenced.
            hook, sys.unraisablehook = sys.unraisablehook, lambda _: None
            try:
                exc.__traceback__ = None
            finally:
                sys.unraisablehook = hook
            raise
