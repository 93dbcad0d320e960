"""The fork server's boot: what it imports, warms and freezes once, for every fork.

Every init is forked from this process, so whatever is imported here is paid
once, and whatever is *not* imported here (libssl, libcrypto) stays out of
every init.
"""

from __future__ import annotations

import gc
import sys
import types
from typing import NoReturn

from ..init._supervise import note_clean_file_mappings


class _NoTLS(types.ModuleType):
    """Stands in for :mod:`ssl` in the fork server: no init ever speaks TLS.

    anyio (and trio) import ssl at module level, which maps libssl and libcrypto:
    3.5 MiB that every fork would share, copy page tables for and tear down, and
    that a supervising init would hold for its whole life.  Every attribute is a
    placeholder exception class, enough for the ``except ssl.SSLError`` clauses
    and annotations of those modules; creating one (using TLS) fails loudly.
    """

    def __getattr__(self, name: str) -> type[Exception]:
        if name.startswith("__"):
            raise AttributeError(name)

        def refuse(cls: type, *args: object, **kwargs: object) -> NoReturn:
            raise RuntimeError(f"ssl.{name}: TLS is not available in the fork server")

        placeholder = type(name, (Exception,), {"__new__": refuse, "__module__": "ssl"})
        setattr(self, name, placeholder)
        return placeholder


def boot(*, trio: bool = False) -> None:
    """Import and warm what every init needs (trio too, on request), then settle the heap."""
    sys.modules["ssl"] = _NoTLS("ssl")
    # trio imports hmac, hence hashlib, whose OpenSSL half maps libcrypto too: without
    # it, hashlib serves every digest the init could want from its builtin modules.
    sys.modules["_hashlib"] = None  # type: ignore[assignment]
    # Preload what every init needs, once: each container then forks it warm.
    import anyio._backends._asyncio  # noqa: F401

    import asyncinit.init._attributes  # (AppArmor, scheduler, ioprio, personality: stdlib)
    import asyncinit.init._entry
    import asyncinit.network._loopback
    import asyncinit.rootfs._cgroup
    import asyncinit.seccomp._load  # noqa: F401  (linux.seccomp's loader: ctypes only)

    from ._warmup import warm_up

    warm_up("asyncio")
    if trio:
        _warm_trio()
    settle_heap()


def load_trio() -> None:
    """The first trio request: import and warm trio's backend, then settle again."""
    _warm_trio()
    settle_heap()


def _warm_trio() -> None:
    import anyio._backends._trio  # noqa: F401

    from ._warmup import warm_up

    warm_up("trio")


def settle_heap() -> None:
    """Keep the garbage collector off the pages every fork shares with us.

    A collection walks every tracked object, writing to its header: in a forked
    child that copies each page of the heap (copy-on-write).  Frozen objects are
    never walked; the children run with the collector off (they are short-lived,
    and a supervising init creates no cycles).  Then note the library pages a
    supervising init may drop, now that every library is loaded.
    """
    gc.collect()
    gc.freeze()
    gc.disable()
    note_clean_file_mappings()
