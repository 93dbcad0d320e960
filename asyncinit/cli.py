"""The ``asyncinit`` command: run, spec, demo, and init (PID 1's entry point).

Imports are lazy: ``asyncinit init`` must not pay for cattrs or the parent's
modules, and no subcommand imports trio unless asked to.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from collections.abc import Sequence
from typing import Any, TextIO

DEMO_SCRIPT = (
    'echo "PID $$ in the container, hostname $(hostname)"; '
    'echo "--- mounts (/proc/self/mountinfo)"; cat /proc/self/mountinfo; '
    'echo "--- /dev"; ls -l /dev'
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="asyncinit", description=__doc__.splitlines()[0])
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
    run.add_argument("id", help="container id")

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

    from ._attach import FORWARDED_SIGNALS, attach_terminal, forward_interrupts, forward_signals
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
        )
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
    from .config import default_spec_dict

    path = os.path.join(bundle, "config.json")
    if os.path.exists(path):
        print(f"asyncinit: error: {path} already exists", file=sys.stderr)
        return 1
    with open(path, "w") as f:
        json.dump(default_spec_dict(rootless=rootless), f, indent="\t")
        f.write("\n")
    return 0


def _demo(backend: str) -> int:
    import tempfile
    import warnings
    from pathlib import Path

    import anyio

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
            return anyio.run(_run_bundle, bundle, "demo", backend, config)


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    """Warnings as the CLI's own one-line messages, not Python's file:line form."""
    print(f"asyncinit: warning: {message}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "init":
        from .init._entry import main as init_main

        init_main(args.sync_fd, args.backend)
    warnings.showwarning = _show_warning
    if args.command == "run":
        # Start the fork server now: it imports the init's modules while we load the config.
        from .parent._launcher import fork_server

        fork_server(args.backend)
    try:
        if args.command == "spec":
            return _spec(args.bundle, args.rootless)
        if args.command == "demo":
            return _demo(args.backend)
        import anyio

        init = "supervise" if args.init else None
        signal_group = True if args.signal_group else None
        return int(
            anyio.run(
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
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if args.debug:
            raise
        from ._errors import AsyncInitError

        if isinstance(exc, AsyncInitError | OSError) or type(exc).__name__ == "ConfigError":
            print(f"asyncinit: error: {exc}", file=sys.stderr)
            return 1
        print(
            f"asyncinit: internal error: {type(exc).__name__}: {exc} (--debug for details)",
            file=sys.stderr,
        )
        return 1
