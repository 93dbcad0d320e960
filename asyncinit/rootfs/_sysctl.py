"""linux.sysctl: key syntax (shared with config validation) and the writes.

A key is written in sysctl(8)'s dot form ("net.ipv4.ip_forward", where an
interface name's own dots are spelled "/": "net.ipv4.conf.eth0/100.rp_filter")
or in its slash form ("net/ipv4/conf/eth0.100/rp_filter"); runc accepts both.
A key with an empty, "." or ".." component is refused whichever way it is read:
runc up to 1.1 turned "net.ipv4/../../vm/swappiness" into /proc/sys/vm/swappiness,
passing the "net." namespace check and writing a host-wide setting.
"""

from __future__ import annotations

import os
import re
import stat

from .._errors import StepError
from ._procfs import open_proc_file

_SEPARATORS = re.compile(r"[./]")


def sysctl_components(key: str) -> list[str] | None:
    """The path components of ``key`` under /proc/sys, or None if it is malformed."""
    if not key or "\0" in key or any(part in ("", ".", "..") for part in _SEPARATORS.split(key)):
        return None
    first = _SEPARATORS.search(key)
    if first is not None and first.group() == "/":
        return key.split("/")
    return [part.replace("/", ".") for part in key.split(".")]


def dotted(key: str) -> str:
    """``key`` in dot form, as runc's namespace checks compare it."""
    components = sysctl_components(key)
    return key if components is None else ".".join(c.replace(".", "/") for c in components)


def write_sysctls(procfd: int, sysctl: dict[str, str]) -> None:
    """Write each key through the private procfs handle (see ``_procfs``)."""
    for key, value in sysctl.items():
        components = sysctl_components(key)
        if components is None:  # validated in the parent already; never trust a plan blindly
            raise StepError("invalid sysctl name", path=key)
        display = "/proc/sys/" + "/".join(components)
        try:
            _write(procfd, "sys/" + "/".join(components), value, display)
        except OSError as exc:
            exc.filename = display  # the container's path, not the handle-relative one
            raise


def _write(procfd: int, relative: str, value: str, display: str) -> None:
    fd = open_proc_file(procfd, relative, os.O_WRONLY | os.O_TRUNC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise StepError("sysctl is not a regular procfs file", path=display)
        os.write(fd, value.encode())
    finally:
        os.close(fd)
