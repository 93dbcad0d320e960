"""The wiring of runc's command line: :func:`asyncinit.oci.main` with the commands that work.

``WORKING`` is the capability list the engine harness (tests/engines) reads: a
runc command is in it once asyncinit carries it out, so engine cases switch on
as commands land, never before (``create --help`` parses long before ``create``
works).  Lean: ``state``/``kill``/``delete`` pay for nothing else.
"""

from __future__ import annotations

from .oci._control import HANDLERS
from .oci._main import BUILTIN

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

WORKING = frozenset(BUILTIN) | frozenset(HANDLERS)
"""The runc commands asyncinit carries out (the others fail with ``not implemented``)."""


def main(argv: Sequence[str], prog: str = "asyncinit") -> int:
    from .oci._main import main as oci_main

    return oci_main(argv, HANDLERS, prog=prog)
