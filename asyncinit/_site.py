"""``site``, run late: the installed ``asyncinit`` starts Python with ``-I -S`` (_launch.py)."""

from __future__ import annotations

import sys


def ensure_site() -> None:
    """What the interpreter skipped under ``-S``: site-packages and their .pth files.

    For the paths that import anyio, cattrs...: in-process ``run``, ``create``,
    the daemon.  Not for ``asyncinit run`` served by a daemon (standard library only).
    """
    if sys.flags.no_site and "site" not in sys.modules:
        import site

        site.main()
