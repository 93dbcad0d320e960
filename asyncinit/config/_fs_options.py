"""Filesystem parameters of the mount types whose full list is known.

An option that is neither a mount flag (``_mount_options``) nor a parameter of
its filesystem would reach the kernel as data and fail there, inside the init,
as a bare EINVAL; refusing it here names the option and its JSON path before
anything is mounted.  Types not listed (overlay, fuse, nfs...) take any data.
The lists are the kernel's (6.x) ``fs_parameter_spec`` tables.

The numeric parameters that name an owner or a mode are read as the kernel
reads them (``kstrtouint``: base 0 for ids, so ``gid=010`` is group 8; base 8
for modes) and checked: ids within runc's 0..2147483647 (``uid=4294967295`` is
(uid_t)-1), modes within 0o7777 (tmpfs and devpts drop higher bits silently).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Final

from ._model import ID_MAX
from ._mount_options import KNOWN_MOUNT_OPTIONS

#: LSM parameters every filesystem accepts.
_LSM: Final = frozenset({"context", "fscontext", "defcontext", "rootcontext", "seclabel"})

FS_PARAMETERS: Final[Mapping[str, frozenset[str]]] = {
    "tmpfs": frozenset(
        {
            "size",
            "nr_blocks",
            "nr_inodes",
            "mode",
            "uid",
            "gid",
            "huge",
            "mpol",
            "inode32",
            "inode64",
            "noswap",
            "quota",
            "usrquota",
            "grpquota",
            "usrquota_block_hardlimit",
            "usrquota_inode_hardlimit",
            "grpquota_block_hardlimit",
            "grpquota_inode_hardlimit",
            "casefold",
            "strict_encoding",
        }
    ),
    "devpts": frozenset({"uid", "gid", "mode", "ptmxmode", "newinstance", "max"}),
    "proc": frozenset({"hidepid", "gid", "subset", "pidns"}),
    "sysfs": frozenset(),
    "mqueue": frozenset(),
}


#: Numeric parameters: name -> base kstrtouint reads it in (0: 0x.. hex, 0.. octal).
_NUMERIC: Final[Mapping[str, Mapping[str, int]]] = {
    "tmpfs": {"uid": 0, "gid": 0, "mode": 8},
    "devpts": {"uid": 0, "gid": 0, "mode": 8, "ptmxmode": 8},
    "proc": {"gid": 0},
}
_DIGITS: Final = {8: "01234567", 10: "0123456789", 16: "0123456789abcdefABCDEF"}
_U32_MAX: Final = 2**32 - 1


def kernel_uint(text: str, base: int) -> int | None:
    """The value kstrtouint(text, base) gives, or None where it fails (EINVAL, ERANGE)."""
    digits = text.removeprefix("+")
    if base == 0:
        if digits[:2] in ("0x", "0X"):
            base, digits = 16, digits[2:]
        else:
            base = 8 if digits.startswith("0") else 10
    if not digits or not all(char in _DIGITS[base] for char in digits):
        return None
    value = int(digits, base)
    return value if value <= _U32_MAX else None


def _numeric(fstype: str | None, options: tuple[str, ...]) -> Iterator[tuple[int, str, str]]:
    """(index, name, value) of each numeric parameter; mount(2) splits data at commas."""
    known = _NUMERIC.get(fstype or "")
    if known is None:
        return
    for index, option in enumerate(options):
        for piece in option.split(","):
            name, equals, value = piece.partition("=")
            if equals and name in known:
                yield index, name, value


def option_value_problems(fstype: str | None, options: tuple[str, ...]) -> list[tuple[int, str]]:
    """(index, message) of each owner or mode parameter the kernel would refuse or misread."""
    problems: list[tuple[int, str]] = []
    for index, name, text in _numeric(fstype, options):
        base = _NUMERIC[fstype or ""][name]
        value = kernel_uint(text, base)
        if base == 8 and (value is None or value > 0o7777):
            problems.append((index, f"{name}={text}: {name} must be an octal mode up to 7777"))
        elif base == 0 and (value is None or value > ID_MAX):
            problems.append((index, f"{name}={text}: {name} must be a number from 0 to {ID_MAX}"))
    return problems


def option_ids(fstype: str | None, options: tuple[str, ...]) -> list[tuple[int, str, int]]:
    """(index, "uid" or "gid", id) of each valid owner parameter."""
    ids: list[tuple[int, str, int]] = []
    for index, name, text in _numeric(fstype, options):
        if name in ("uid", "gid"):
            value = kernel_uint(text, 0)
            if value is not None and value <= ID_MAX:
                ids.append((index, name, value))
    return ids


def unknown_options(fstype: str | None, options: tuple[str, ...]) -> list[tuple[int, str]]:
    """(index, option) of each option that ``fstype`` would reject as data."""
    known = FS_PARAMETERS.get(fstype or "")
    if known is None:
        return []
    return [
        (index, option)
        for index, option in enumerate(options)
        if option not in KNOWN_MOUNT_OPTIONS
        and option.split("=", 1)[0] not in known
        and option.split("=", 1)[0] not in _LSM
    ]
