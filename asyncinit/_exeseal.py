"""A sealed ``/proc/self/exe`` for every process that execs into a container (CVE-2019-5736).

The init and the exec'd joiners are the host's Python interpreter until they
exec the workload.  A workload whose ``args[0]`` is a script starting with
``#!/proc/self/exe`` makes the kernel exec *their* executable again, inside the
container: that process holds the host's interpreter as its ``/proc/self/exe``
and, as root, could open it for writing once nothing executes it any more
(``O_PATH`` now, reopened through ``/proc/self/fd`` later), or at once where
ETXTBSY does not stop it.

So those processes run from a file that cannot be written (runc 1.2's
``libcontainer/exeseal``, rebuilt here):

1. the interpreter seen through a read-only, detached overlayfs mount whose
   only upper layer is the interpreter's directory (no copy; writes give
   EROFS and nothing unwraps it to the real file), else
2. a sealed memfd copy (``F_SEAL_SEAL|SHRINK|GROW|WRITE``; writes give EPERM).

Made once per process (:func:`sealed_interpreter` caches it) and used as
``Popen(executable=...)`` for the fork server and the exec launcher, or
``execve(fd)`` for a re-exec (:func:`reexec_sealed`).  ``argv[0]`` stays
``sys.executable``: CPython (3.11-3.13) derives ``sys.executable`` and its
prefix from ``argv[0]`` when it holds a slash (and a venv from the
``pyvenv.cfg`` beside it), not from ``/proc/self/exe``, which here reads
``/python3.11`` (the detached mount) or ``/memfd:...``.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import sys

_OVERLAYFS_SUPER_MAGIC = 0x794C7630
_MFD_CLOEXEC = 0x1
_MFD_ALLOW_SEALING = 0x2
_MFD_EXEC = 0x10  # Linux 6.3: an executable memfd even under vm.memfd_noexec=1
_F_SEAL_EXEC = 0x20  # Linux 6.3: nobody may chmod it afterwards
#: The seals that make a memfd unwritable for good (runc's baseMemfdSeals).
MEMFD_SEALS = fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE

_sealed: int | None = None


def interpreter() -> str:
    """The real path of this interpreter (what the sealed file is made of, and argv[0])."""
    if not sys.executable:
        raise OSError(errno.ENOENT, "sys.executable is empty: cannot find the interpreter")
    return os.path.realpath(sys.executable)


def is_sealed(fd: int) -> bool:
    """Whether ``fd`` (opened for reading) is a file no one can write through.

    A sealed memfd (every seal of :data:`MEMFD_SEALS`), or a file on a
    read-only overlayfs mount.
    """
    try:
        seals = fcntl.fcntl(fd, fcntl.F_GET_SEALS)
    except OSError:
        seals = 0
    if seals & MEMFD_SEALS == MEMFD_SEALS:
        return True
    from ._syscalls._fds import fstatfs_type

    if not os.fstatvfs(fd).f_flag & os.ST_RDONLY:
        return False
    return fstatfs_type(fd) == _OVERLAYFS_SUPER_MAGIC


def self_exe_sealed() -> bool:
    """Whether this process already runs from a sealed file."""
    fd = os.open("/proc/self/exe", os.O_RDONLY | os.O_CLOEXEC)
    try:
        return is_sealed(fd)
    finally:
        os.close(fd)


def sealed_interpreter() -> int:
    """An fd (close-on-exec) of this interpreter that cannot be written; made once."""
    global _sealed
    if _sealed is None:
        _sealed = _make_sealed(interpreter())
    return _sealed


def _make_sealed(path: str) -> int:
    try:
        return overlay_view(path)
    except OSError as exc:
        # EPERM: not root (no overlayfs in the initial user namespace);
        # ENOSYS/ENODEV: no fsopen or no overlayfs; EINVAL/ELOOP: a layout overlayfs refuses.
        if exc.errno not in (errno.EPERM, errno.ENOSYS, errno.ENODEV, errno.EINVAL, errno.ELOOP):
            raise
    return sealed_copy(path)


def overlay_view(path: str) -> int:
    """``path`` through a read-only, detached overlayfs of its directory (``O_PATH``).

    overlayfs without an upper layer needs two lower ones.  The second is
    ``/dev``, below the interpreter's directory (whose entries hide any of the
    same name): it always exists, never overlaps an interpreter's directory,
    and is cheap.  (A detached empty tmpfs works as well on recent kernels,
    but dropping it costs the caller an RCU grace period, up to ~40 ms.)
    """
    directory, name = os.path.split(path)
    mount = _overlay(f"{_escape(directory)}:/dev")
    try:
        return os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=mount)
    finally:
        os.close(mount)


def _overlay(lowerdir: str) -> int:
    """A read-only, nosuid, nodev detached overlayfs mount of ``lowerdir``."""
    from ._syscalls import _mount as sc

    context = sc.fsopen("overlay")
    try:
        sc.fsconfig(context, sc.FSCONFIG_SET_STRING, "lowerdir", lowerdir)
        with contextlib.suppress(OSError):  # xino only adds dmesg noise here (runc's)
            sc.fsconfig(context, sc.FSCONFIG_SET_STRING, "xino", "off")
        sc.fsconfig(context, sc.FSCONFIG_CMD_CREATE)
        return sc.fsmount(
            context, sc.MOUNT_ATTR_RDONLY | sc.MOUNT_ATTR_NOSUID | sc.MOUNT_ATTR_NODEV
        )
    finally:
        os.close(context)


def _escape(directory: str) -> str:
    """overlayfs's lowerdir syntax: ``:`` separates layers, ``\\`` escapes."""
    return directory.replace("\\", "\\\\").replace(":", "\\:")


def sealed_copy(path: str) -> int:
    """A sealed memfd copy of ``path`` (runc 1.1's cloned binary)."""
    name = f"asyncinit:{os.path.basename(path)}"
    try:
        memfd = os.memfd_create(name, _MFD_CLOEXEC | _MFD_ALLOW_SEALING | _MFD_EXEC)
    except OSError as exc:  # EINVAL: MFD_EXEC is newer than this kernel
        if exc.errno != errno.EINVAL:
            raise
        memfd = os.memfd_create(name, _MFD_CLOEXEC | _MFD_ALLOW_SEALING)
    try:
        _copy_into(path, memfd)
        os.fchmod(memfd, 0o511)
        with contextlib.suppress(OSError):  # Linux < 6.3: the other seals are what matters
            fcntl.fcntl(memfd, fcntl.F_ADD_SEALS, _F_SEAL_EXEC)
        fcntl.fcntl(memfd, fcntl.F_ADD_SEALS, MEMFD_SEALS)
    except BaseException:
        os.close(memfd)
        raise
    return memfd


def _copy_into(path: str, memfd: int) -> None:
    source = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        size = os.fstat(source).st_size
        copied = 0
        while copied < size:
            sent = os.sendfile(memfd, source, None, size - copied)
            if sent == 0:
                break
            copied += sent
        if copied != size:
            raise OSError(errno.EIO, f"copied {copied} of {size} bytes", path)
    finally:
        os.close(source)


def exec_path(fd: int) -> str:
    """A path that execs ``fd`` in a child that inherited it (``Popen(executable=)``)."""
    return f"/proc/self/fd/{fd}"


def reexec_sealed() -> None:
    """Re-exec this process from the sealed interpreter, same command line, unless it
    already runs from one.

    For the processes that fork PID 1 or an exec'd process themselves and were
    started from the plain interpreter: the CLI's ``create``, ``run`` and
    ``exec``, and ``Container.exec``'s launcher.  Call it before anything is set
    up: only fds without close-on-exec survive.  ``argv[0]`` is ``sys.executable``
    as it is (a venv's symlink keeps its ``pyvenv.cfg``).
    """
    if self_exe_sealed():
        return
    argv = [sys.executable, *sys.orig_argv[1:]]
    os.execve(sealed_interpreter(), argv, os.environ)
