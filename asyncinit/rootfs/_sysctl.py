"""linux.sysctl: the writes, through the private procfs handle.

The key syntax (dot and slash forms, refused components) is a rule shared with
config validation: :func:`asyncinit._rules.sysctl_components`.
"""

from __future__ import annotations

import os
import stat

from .._errors import StepError
from .._fs._procfs import open_proc_file
from .._rules import sysctl_components


def write_sysctls(procfd: int, sysctl: dict[str, str]) -> None:
    """Write each key through the private procfs handle (see ``asyncinit._fs._procfs``)."""
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
