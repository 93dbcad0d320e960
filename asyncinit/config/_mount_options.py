"""Mount option strings -> mount(2) flags, propagation, mount_setattr(2) attributes.

Mirrors runc's ``specconv.parseMountOptions`` so a config.json means the same thing
under asyncinit as under runc: known flag names set or clear ``MS_*`` bits (the last
one wins), propagation names are kept in order (they need one mount(2) call each),
``r*`` names become recursive ``MOUNT_ATTR_*`` changes, and everything unknown is
filesystem data passed verbatim to the kernel.

Two deliberate differences from runc, both where runc's result is unusable:

* ``defaults`` is a no-op. runc passes it on as filesystem data, which tmpfs and
  most other filesystems reject and which turns a plain bind mount into one with
  "data options".
* The recursive access-time options form an enum, as in the kernel: each one sets
  its ``MOUNT_ATTR__ATIME`` value and puts the whole ``MOUNT_ATTR__ATIME`` field in
  ``attr_clr``, which mount_setattr(2) requires. The negative forms (``ratime``,
  ``rnorelatime``, ``rnostrictatime``) select ``MOUNT_ATTR_RELATIME``, the kernel
  default that their non-recursive twins fall back to. runc instead puts a single
  bit in ``attr_clr`` for some of them, which the kernel rejects with EINVAL.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

import attrs

__all__ = [
    "KNOWN_MOUNT_OPTIONS",
    "MOUNT_ATTR_IDMAP",
    "MOUNT_ATTR_NOATIME",
    "MOUNT_ATTR_NODEV",
    "MOUNT_ATTR_NODIRATIME",
    "MOUNT_ATTR_NOEXEC",
    "MOUNT_ATTR_NOSUID",
    "MOUNT_ATTR_NOSYMFOLLOW",
    "MOUNT_ATTR_RDONLY",
    "MOUNT_ATTR_RELATIME",
    "MOUNT_ATTR_STRICTATIME",
    "MOUNT_ATTR__ATIME",
    "MS_BIND",
    "MS_DIRSYNC",
    "MS_I_VERSION",
    "MS_LAZYTIME",
    "MS_MANDLOCK",
    "MS_MOVE",
    "MS_NOATIME",
    "MS_NODEV",
    "MS_NODIRATIME",
    "MS_NOEXEC",
    "MS_NOSUID",
    "MS_NOSYMFOLLOW",
    "MS_PRIVATE",
    "MS_RDONLY",
    "MS_REC",
    "MS_RELATIME",
    "MS_REMOUNT",
    "MS_SHARED",
    "MS_SILENT",
    "MS_SLAVE",
    "MS_STRICTATIME",
    "MS_SYNCHRONOUS",
    "MS_UNBINDABLE",
    "MountOptions",
    "parse_mount_options",
]

# mount(2) flags (<linux/mount.h>; identical on every architecture).
MS_RDONLY: Final = 1
MS_NOSUID: Final = 2
MS_NODEV: Final = 4
MS_NOEXEC: Final = 8
MS_SYNCHRONOUS: Final = 16
MS_REMOUNT: Final = 32
MS_MANDLOCK: Final = 64
MS_DIRSYNC: Final = 128
MS_NOSYMFOLLOW: Final = 256
MS_NOATIME: Final = 1024
MS_NODIRATIME: Final = 2048
MS_BIND: Final = 4096
MS_MOVE: Final = 8192
MS_REC: Final = 16384
MS_SILENT: Final = 32768
MS_UNBINDABLE: Final = 1 << 17
MS_PRIVATE: Final = 1 << 18
MS_SLAVE: Final = 1 << 19
MS_SHARED: Final = 1 << 20
MS_RELATIME: Final = 1 << 21
MS_I_VERSION: Final = 1 << 23
MS_STRICTATIME: Final = 1 << 24
MS_LAZYTIME: Final = 1 << 25

# mount_setattr(2) attributes.
MOUNT_ATTR_RDONLY: Final = 0x1
MOUNT_ATTR_NOSUID: Final = 0x2
MOUNT_ATTR_NODEV: Final = 0x4
MOUNT_ATTR_NOEXEC: Final = 0x8
MOUNT_ATTR__ATIME: Final = 0x70
MOUNT_ATTR_RELATIME: Final = 0x0
MOUNT_ATTR_NOATIME: Final = 0x10
MOUNT_ATTR_STRICTATIME: Final = 0x20
MOUNT_ATTR_NODIRATIME: Final = 0x80
MOUNT_ATTR_IDMAP: Final = 0x100000
MOUNT_ATTR_NOSYMFOLLOW: Final = 0x200000

# name -> (clears the flag?, flag); runc's mountFlags table.
_FLAGS: Final[Mapping[str, tuple[bool, int]]] = {
    "async": (True, MS_SYNCHRONOUS),
    "atime": (True, MS_NOATIME),
    "bind": (False, MS_BIND),
    "dev": (True, MS_NODEV),
    "diratime": (True, MS_NODIRATIME),
    "dirsync": (False, MS_DIRSYNC),
    "exec": (True, MS_NOEXEC),
    "iversion": (False, MS_I_VERSION),
    "lazytime": (False, MS_LAZYTIME),
    "loud": (True, MS_SILENT),
    "mand": (False, MS_MANDLOCK),
    "noatime": (False, MS_NOATIME),
    "nodev": (False, MS_NODEV),
    "nodiratime": (False, MS_NODIRATIME),
    "noexec": (False, MS_NOEXEC),
    "noiversion": (True, MS_I_VERSION),
    "nolazytime": (True, MS_LAZYTIME),
    "nomand": (True, MS_MANDLOCK),
    "norelatime": (True, MS_RELATIME),
    "nostrictatime": (True, MS_STRICTATIME),
    "nosuid": (False, MS_NOSUID),
    "nosymfollow": (False, MS_NOSYMFOLLOW),
    "rbind": (False, MS_BIND | MS_REC),
    "relatime": (False, MS_RELATIME),
    "remount": (False, MS_REMOUNT),
    "ro": (False, MS_RDONLY),
    "rw": (True, MS_RDONLY),
    "silent": (False, MS_SILENT),
    "strictatime": (False, MS_STRICTATIME),
    "suid": (True, MS_NOSUID),
    "sync": (False, MS_SYNCHRONOUS),
    "symfollow": (True, MS_NOSYMFOLLOW),
}

#: Propagation options, and linux.rootfsPropagation's values (parent/_compile.py).
PROPAGATION: Final[Mapping[str, int]] = {
    "private": MS_PRIVATE,
    "rprivate": MS_PRIVATE | MS_REC,
    "slave": MS_SLAVE,
    "rslave": MS_SLAVE | MS_REC,
    "shared": MS_SHARED,
    "rshared": MS_SHARED | MS_REC,
    "unbindable": MS_UNBINDABLE,
    "runbindable": MS_UNBINDABLE | MS_REC,
}

# Recursive boolean attributes: name -> (clears the attribute?, attribute).
_REC_ATTRS: Final[Mapping[str, tuple[bool, int]]] = {
    "rro": (False, MOUNT_ATTR_RDONLY),
    "rrw": (True, MOUNT_ATTR_RDONLY),
    "rnosuid": (False, MOUNT_ATTR_NOSUID),
    "rsuid": (True, MOUNT_ATTR_NOSUID),
    "rnodev": (False, MOUNT_ATTR_NODEV),
    "rdev": (True, MOUNT_ATTR_NODEV),
    "rnoexec": (False, MOUNT_ATTR_NOEXEC),
    "rexec": (True, MOUNT_ATTR_NOEXEC),
    "rnodiratime": (False, MOUNT_ATTR_NODIRATIME),
    "rdiratime": (True, MOUNT_ATTR_NODIRATIME),
    "rnosymfollow": (False, MOUNT_ATTR_NOSYMFOLLOW),
    "rsymfollow": (True, MOUNT_ATTR_NOSYMFOLLOW),
}

# Recursive access-time options: name -> value of the MOUNT_ATTR__ATIME field.
_REC_ATIME: Final[Mapping[str, int]] = {
    "ratime": MOUNT_ATTR_RELATIME,
    "rnoatime": MOUNT_ATTR_NOATIME,
    "rrelatime": MOUNT_ATTR_RELATIME,
    "rnorelatime": MOUNT_ATTR_RELATIME,
    "rstrictatime": MOUNT_ATTR_STRICTATIME,
    "rnostrictatime": MOUNT_ATTR_RELATIME,
}

# Handled by the runtime itself, never passed to the kernel.
_EXTENSIONS: Final = frozenset({"tmpcopyup", "idmap", "ridmap"})
_NOOPS: Final = frozenset({"defaults"})

KNOWN_MOUNT_OPTIONS: Final[frozenset[str]] = frozenset(
    (*_FLAGS, *PROPAGATION, *_REC_ATTRS, *_REC_ATIME, *_EXTENSIONS, *_NOOPS)
)
"""Every option name that is not filesystem data (what ``runc features`` lists)."""


@attrs.frozen
class MountOptions:
    """A mount's ``options`` list, decoded.

    ``flags``/``clear_flags`` are ``MS_*`` bits to set on / remove from the mount;
    ``propagation`` holds one ``MS_*`` propagation value per option, in the given
    order; ``attr_set``/``attr_clr`` are for ``mount_setattr(AT_RECURSIVE)``;
    ``data`` is the filesystem-specific remainder; ``extensions`` names runtime
    features (``tmpcopyup``, ``idmap``, ``ridmap``).
    """

    flags: int = 0
    clear_flags: int = 0
    propagation: tuple[int, ...] = ()
    attr_set: int = 0
    attr_clr: int = 0
    data: str = ""
    extensions: frozenset[str] = frozenset()

    @property
    def is_bind(self) -> bool:
        """True for ``bind`` and ``rbind``."""
        return bool(self.flags & MS_BIND)

    @property
    def is_recursive_bind(self) -> bool:
        """True for ``rbind``."""
        return self.flags & (MS_BIND | MS_REC) == MS_BIND | MS_REC

    @property
    def has_rec_attrs(self) -> bool:
        """True when a mount_setattr(2) call is needed."""
        return bool(self.attr_set or self.attr_clr)


def parse_mount_options(options: Sequence[str]) -> MountOptions:
    """Decode ``options`` as runc does; never raises (unknown names become data)."""
    flags = clear_flags = attr_set = attr_clr = 0
    propagation: list[int] = []
    data: list[str] = []
    extensions: set[str] = set()
    for option in options:
        if option in _FLAGS:
            clear, flag = _FLAGS[option]
            if clear:
                flags &= ~flag
                clear_flags |= flag
            else:
                flags |= flag
                clear_flags &= ~flag
        elif option in PROPAGATION:
            propagation.append(PROPAGATION[option])
        elif option in _REC_ATTRS:
            clear, attr = _REC_ATTRS[option]
            if clear:
                attr_clr |= attr
                attr_set &= ~attr
            else:
                attr_set |= attr
                attr_clr &= ~attr
        elif option in _REC_ATIME:
            attr_set = (attr_set & ~MOUNT_ATTR__ATIME) | _REC_ATIME[option]
            attr_clr |= MOUNT_ATTR__ATIME
        elif option in _EXTENSIONS:
            extensions.add(option)
        elif option not in _NOOPS:
            data.append(option)
    return MountOptions(
        flags=flags,
        clear_flags=clear_flags,
        propagation=tuple(propagation),
        attr_set=attr_set,
        attr_clr=attr_clr,
        data=",".join(data),
        extensions=frozenset(extensions),
    )
