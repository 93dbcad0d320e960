"""The ``asyncinit`` command's first Python: route, and load ``site`` only where needed.

Engines run ``state``, ``kill``, ``delete`` and ``start`` as separate
processes, often; each must cost about what runc's does.  An interpreter
started as usual runs ``site`` (every .pth file in site-packages: here one of
them imports certifi, ~40 ms) before our first line.  So the installed command
(``scripts/asyncinit``, a shell line that execs ``python3 -I -S``) starts
without it, and this module decides:

* the lean runc commands (:data:`LEAN`) use the standard library only: run as is;
* everything else (``create``, ``exec``, an in-process ``run``, the daemon...)
  needs anyio, cattrs...: :func:`asyncinit._site.ensure_site` runs ``site.main()`` first, which is
  what the interpreter would have done (``-S``'s documented way to run it later);
  ``asyncinit run`` served by a daemon never needs it.

``python -m asyncinit`` comes here too (it pays for ``site`` itself, as asked).
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

LEAN = frozenset({"state", "kill", "delete", "start", "list", "features", "version", "help"})
"""runc commands whose whole path is the standard library and asyncinit.oci."""


FORKING = frozenset({"create", "run", "exec"})
"""runc commands that fork PID 1 or an exec'd process from this very process."""


def _run_sealed() -> None:
    """Re-exec from a sealed interpreter before site and the imports (CVE-2019-5736)."""
    from ._exeseal import reexec_sealed

    try:
        reexec_sealed()
    except OSError as exc:
        sys.stderr.write(f"asyncinit: error: cannot seal the interpreter: {exc}\n")
        raise SystemExit(1) from None


def main(argv: Sequence[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else list(argv)
    if argv is None:
        from ._stdio import ensure_stdio

        ensure_stdio()
    from .oci._main import BUILTIN, command_of, is_runc_command
    from .oci._main import main as oci_main

    if not is_runc_command(arguments):
        from .cli import main as cli_main  # it calls ensure_site() where needed

        return cli_main(argv)
    command = command_of(arguments)
    if argv is None and command in FORKING:
        _run_sealed()
    prog = sys.argv[0] if argv is None else "asyncinit"
    if command in BUILTIN:  # state, list...: asyncinit.oci alone, not the wiring
        return oci_main(arguments, {}, prog=prog)
    if command not in LEAN:
        from ._site import ensure_site

        ensure_site()
    from ._runc import main as runc_main

    return runc_main(arguments, prog)
