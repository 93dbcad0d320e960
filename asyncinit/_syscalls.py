"""Thin ctypes wrappers for the Linux syscalls that `os` does not expose.

Every wrapper raises an :class:`OSError` whose ``errno`` is the kernel's, whose
message starts with the operation's name and whose ``filename``/``filename2`` are
the paths involved, so an error can cross the sync pipe and still say what failed.

libc is loaded once, at import, by ``CDLL(None)``: ``ctypes.util.find_library``
would run ``ldconfig`` in a subprocess, which is slow and, after pivot_root, the
container's binary.  Only ctypes is imported: this module is on the init's hot path.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os
import platform

from . import _kernel

_libc = ctypes.CDLL(None, use_errno=True)
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long

_ARCH = platform.machine()
_NR_BY_ARCH: dict[str, dict[str, int]] = {
    "x86_64": {
        "pivot_root": 155,
        "mount": 165,
        "umount2": 166,
        "unshare": 272,
        "setns": 308,
        "keyctl": 250,
        "bpf": 321,
        "seccomp": 317,
    },
    "aarch64": {
        "pivot_root": 41,
        "mount": 40,
        "umount2": 39,
        "unshare": 97,
        "setns": 268,
        "keyctl": 219,
        "bpf": 280,
        "seccomp": 277,
    },
}
_NR = dict(_NR_BY_ARCH.get(_ARCH, _NR_BY_ARCH["x86_64"]))
# From 424 on, syscall numbers are the same on every architecture.
_NR.update(
    pidfd_send_signal=424,
    open_tree=428,
    move_mount=429,
    fsopen=430,
    fsconfig=431,
    fsmount=432,
    pidfd_open=434,
    close_range=436,
    openat2=437,
    clone3=435,
    pidfd_getfd=438,
    mount_setattr=442,
)

# clone/unshare flags
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
CLONE_NEWTIME = 0x00000080

# mount(2)
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_NOSYMFOLLOW = 256
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_UNBINDABLE = 1 << 17
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24
MS_SYNCHRONOUS = 16
MS_MANDLOCK = 64
MS_ATIME_ENUM = MS_NOATIME | MS_RELATIME | MS_STRICTATIME
#: flags the kernel locks on mounts inherited from a more privileged user namespace
MS_LOCKED = MS_RDONLY | MS_NODEV | MS_NOEXEC | MS_NOSUID | MS_ATIME_ENUM | MS_NODIRATIME
MS_PROPAGATION = MS_SHARED | MS_SLAVE | MS_PRIVATE | MS_UNBINDABLE
MNT_DETACH = 2

# statvfs f_flag bits (ST_*) that a bind remount must keep, and their MS_* twins
ST_TO_MS = {
    os.ST_RDONLY: MS_RDONLY,
    os.ST_NOSUID: MS_NOSUID,
    os.ST_NODEV: MS_NODEV,
    os.ST_NOEXEC: MS_NOEXEC,
    os.ST_SYNCHRONOUS: MS_SYNCHRONOUS,
    os.ST_MANDLOCK: MS_MANDLOCK,
    os.ST_NOATIME: MS_NOATIME,
    os.ST_NODIRATIME: MS_NODIRATIME,
    os.ST_RELATIME: MS_RELATIME,
    0x2000: MS_NOSYMFOLLOW,  # ST_NOSYMFOLLOW, not in `os` on 3.11
}

# openat2 resolve flags
RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10

# open_tree / move_mount / mount_setattr
OPEN_TREE_CLONE = 1
OPEN_TREE_CLOEXEC = os.O_CLOEXEC
AT_EMPTY_PATH = 0x1000
AT_RECURSIVE = 0x8000
MOVE_MOUNT_F_EMPTY_PATH = 0x4
MOVE_MOUNT_T_EMPTY_PATH = 0x40
MOUNT_ATTR_IDMAP = 0x100000

# statfs f_type magic numbers
PROC_SUPER_MAGIC = 0x9FA0
SYSFS_MAGIC = 0x62656572

# prctl
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_KEEPCAPS = 8
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4

CLOSE_RANGE_CLOEXEC = 4


def _error(operation: str, path: str | None = None, path2: str | None = None) -> OSError:
    err = ctypes.get_errno()
    message = f"{operation}: {os.strerror(err)}"
    hint = _kernel.syscall_hint(operation, err)
    if hint:
        message = f"{message}: {hint}"
    error = OSError(err, message, path, None, path2)
    error.operation = operation  # type: ignore[attr-defined]
    return error


def _check(result: int, operation: str, path: str | None = None, path2: str | None = None) -> int:
    if result == -1:
        raise _error(operation, path, path2)
    return result


def _encode(path: str | None) -> bytes | None:
    return None if path is None else os.fsencode(path)


def operation_of(error: BaseException) -> str | None:
    """The syscall name attached to an OSError raised here, if any."""
    return getattr(error, "operation", None)


def with_operation(error: OSError, operation: str) -> OSError:
    """Tag an OSError raised by `os` with the operation that failed."""
    if operation_of(error) is None:
        error.operation = operation  # type: ignore[attr-defined]
    return error


def mount(
    source: str | None,
    target: str,
    fstype: str | None,
    flags: int = 0,
    data: str | None = None,
    *,
    display_target: str | None = None,
) -> None:
    """mount(2). ``display_target`` names the target in errors when ``target`` is an fd path."""
    result = _syscall(
        _NR["mount"],
        _encode(source),
        _encode(target),
        _encode(fstype),
        ctypes.c_ulong(flags),
        _encode(data or None),
    )
    _check(result, "mount", display_target or target, source)


def umount2(target: str, flags: int = 0) -> None:
    _check(_syscall(_NR["umount2"], _encode(target), ctypes.c_int(flags)), "umount2", target)


def pivot_root(new_root: str, put_old: str) -> None:
    result = _syscall(_NR["pivot_root"], _encode(new_root), _encode(put_old))
    _check(result, "pivot_root", new_root, put_old)


def unshare(flags: int) -> None:
    _check(_syscall(_NR["unshare"], ctypes.c_int(flags)), "unshare")


def setns(fd: int, nstype: int = 0, path: str | None = None) -> None:
    _check(_syscall(_NR["setns"], ctypes.c_int(fd), ctypes.c_int(nstype)), "setns", path)


class _OpenHow(ctypes.Structure):
    _fields_ = (("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64))


def openat2(dirfd: int, path: str, flags: int, resolve: int, mode: int = 0) -> int:
    """openat2(2): the kernel resolves ``path`` under ``dirfd`` with ``resolve`` rules."""
    how = _OpenHow(flags | os.O_CLOEXEC, mode, resolve)
    result = _syscall(
        _NR["openat2"],
        ctypes.c_int(dirfd),
        _encode(path),
        ctypes.byref(how),
        ctypes.c_size_t(ctypes.sizeof(how)),
    )
    return _check(result, "openat2", path)


def open_tree(dirfd: int, path: str, flags: int) -> int:
    result = _syscall(_NR["open_tree"], ctypes.c_int(dirfd), _encode(path), ctypes.c_uint(flags))
    return _check(result, "open_tree", path)


def move_mount(from_fd: int, from_path: str, to_fd: int, to_path: str, flags: int) -> None:
    result = _syscall(
        _NR["move_mount"],
        ctypes.c_int(from_fd),
        _encode(from_path),
        ctypes.c_int(to_fd),
        _encode(to_path),
        ctypes.c_uint(flags),
    )
    _check(result, "move_mount", to_path or None)


class _MountAttr(ctypes.Structure):
    _fields_ = (
        ("attr_set", ctypes.c_uint64),
        ("attr_clr", ctypes.c_uint64),
        ("propagation", ctypes.c_uint64),
        ("userns_fd", ctypes.c_uint64),
    )


def mount_setattr(
    dirfd: int,
    path: str,
    flags: int,
    attr_set: int,
    attr_clr: int = 0,
    propagation: int = 0,
    userns_fd: int = 0,
    *,
    display_path: str | None = None,
) -> None:
    attr = _MountAttr(attr_set, attr_clr, propagation, userns_fd)
    result = _syscall(
        _NR["mount_setattr"],
        ctypes.c_int(dirfd),
        _encode(path),
        ctypes.c_uint(flags),
        ctypes.byref(attr),
        ctypes.c_size_t(ctypes.sizeof(attr)),
    )
    _check(result, "mount_setattr", display_path or path)


class _Statfs(ctypes.Structure):
    _fields_ = (
        ("f_type", ctypes.c_long),
        ("f_bsize", ctypes.c_long),
        ("f_blocks", ctypes.c_ulong),
        ("f_bfree", ctypes.c_ulong),
        ("f_bavail", ctypes.c_ulong),
        ("f_files", ctypes.c_ulong),
        ("f_ffree", ctypes.c_ulong),
        ("f_fsid", ctypes.c_int * 2),
        ("f_namelen", ctypes.c_long),
        ("f_frsize", ctypes.c_long),
        ("f_flags", ctypes.c_long),
        ("f_spare", ctypes.c_long * 4),
    )


def fstatfs_type(fd: int, *, display_path: str | None = None) -> int:
    """The filesystem magic number (``f_type``) of the file ``fd`` refers to."""
    buf = _Statfs()
    _check(_libc.fstatfs(ctypes.c_int(fd), ctypes.byref(buf)), "fstatfs", display_path)
    return int(buf.f_type) & 0xFFFFFFFF


def close_range_cloexec(first: int) -> None:
    """Mark every fd from ``first`` up close-on-exec, in one syscall."""
    result = _syscall(
        _NR["close_range"], ctypes.c_uint(first), ctypes.c_uint(0xFFFFFFFF), ctypes.c_uint(4)
    )
    _check(result, "close_range")


def pidfd_send_signal(pidfd: int, signum: int) -> None:
    result = _syscall(
        _NR["pidfd_send_signal"], ctypes.c_int(pidfd), ctypes.c_int(signum), None, ctypes.c_uint(0)
    )
    _check(result, "pidfd_send_signal")


def pidfd_getfd(pidfd: int, target_fd: int) -> int:
    """A close-on-exec copy of fd ``target_fd`` of the process ``pidfd`` names (runc's pidGetFd)."""
    result = _syscall(
        _NR["pidfd_getfd"], ctypes.c_int(pidfd), ctypes.c_int(target_fd), ctypes.c_uint(0)
    )
    return _check(result, "pidfd_getfd")


def seccomp(operation: int, flags: int, args: object) -> int:
    """seccomp(2); ``args`` is a ctypes pointer (``byref``) or None. Returns the kernel's result."""
    result = _syscall(_NR["seccomp"], ctypes.c_uint(operation), ctypes.c_uint(flags), args)
    return _check(result, "seccomp")


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    result: int = _libc.prctl(
        ctypes.c_int(option),
        ctypes.c_ulong(arg2),
        ctypes.c_ulong(arg3),
        ctypes.c_ulong(arg4),
        ctypes.c_ulong(arg5),
    )
    return _check(result, "prctl")


MADV_RANDOM = 1
MADV_DONTNEED = 4


def madvise(address: int, length: int, advice: int) -> None:
    result: int = _libc.madvise(ctypes.c_void_p(address), ctypes.c_size_t(length), advice)
    _check(result, "madvise")


def setdomainname(name: str) -> None:
    raw = name.encode()
    _check(_libc.setdomainname(raw, ctypes.c_size_t(len(raw))), "setdomainname", name)


class _CapHeader(ctypes.Structure):
    _fields_ = (("version", ctypes.c_uint32), ("pid", ctypes.c_int))


class _CapData(ctypes.Structure):
    _fields_ = (
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    )


_LINUX_CAPABILITY_VERSION_3 = 0x20080522


def capset(effective: int, permitted: int, inheritable: int) -> None:
    """capset(2) for the calling thread, with 64-bit masks."""
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    for index, shift in enumerate((0, 32)):
        data[index].effective = (effective >> shift) & 0xFFFFFFFF
        data[index].permitted = (permitted >> shift) & 0xFFFFFFFF
        data[index].inheritable = (inheritable >> shift) & 0xFFFFFFFF
    _check(_libc.capset(ctypes.byref(header), data), "capset")


@functools.cache
def last_cap() -> int:
    """The highest capability the kernel knows; read once, before the jail hides /proc."""
    with open("/proc/sys/kernel/cap_last_cap", "rb") as f:
        return int(f.read())


# The new mount API, for mounts built detached and attached onto a pinned fd:
# no path string (and no /proc/self/fd magic link) is resolved at attach time.
TMPFS_MAGIC = 0x01021994
FSOPEN_CLOEXEC = 1
FSMOUNT_CLOEXEC = 1
FSCONFIG_SET_FLAG = 0
FSCONFIG_SET_STRING = 1
FSCONFIG_CMD_CREATE = 6
MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOSUID = 0x2
MOUNT_ATTR_NODEV = 0x4
MOUNT_ATTR_NOEXEC = 0x8


def fsopen(fstype: str) -> int:
    """fsopen(2): a filesystem context for a new superblock of ``fstype``."""
    result = _syscall(_NR["fsopen"], _encode(fstype), ctypes.c_uint(FSOPEN_CLOEXEC))
    return _check(result, "fsopen", fstype)


def fsconfig(fs_fd: int, cmd: int, key: str | None = None, value: str | None = None) -> None:
    result = _syscall(
        _NR["fsconfig"],
        ctypes.c_int(fs_fd),
        ctypes.c_uint(cmd),
        _encode(key),
        _encode(value),
        ctypes.c_int(0),
    )
    _check(result, "fsconfig", key)


def fsmount(fs_fd: int, attr_flags: int = 0) -> int:
    """fsmount(2): a detached mount of the context's superblock, as an fd."""
    result = _syscall(
        _NR["fsmount"],
        ctypes.c_int(fs_fd),
        ctypes.c_uint(FSMOUNT_CLOEXEC),
        ctypes.c_uint(attr_flags),
    )
    return _check(result, "fsmount")


def attach_mount(tree_fd: int, target_fd: int, *, display_path: str) -> None:
    """move_mount(2) the detached tree ``tree_fd`` onto the file ``target_fd`` names."""
    result = _syscall(
        _NR["move_mount"],
        ctypes.c_int(tree_fd),
        b"",
        ctypes.c_int(target_fd),
        b"",
        ctypes.c_uint(MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH),
    )
    _check(result, "move_mount", display_path)


_KEYCTL_JOIN_SESSION_KEYRING = 1
_KEYCTL_SETPERM = 5
_KEYCTL_DESCRIBE = 6
_KEY_USR_SEARCH = 0x080000


def join_session_keyring(name: str) -> None:
    """A new session keyring for the calling thread, searchable by its user (runc's).

    Without it the container shares the caller's session keyring, and so the keys
    of whoever started it.  Credentials are per thread: call it in the thread that
    execs.
    """
    key = _syscall(_NR["keyctl"], ctypes.c_int(_KEYCTL_JOIN_SESSION_KEYRING), name.encode())
    key = _check(key, "keyctl", name)
    buffer = ctypes.create_string_buffer(256)
    length = _syscall(
        _NR["keyctl"],
        ctypes.c_int(_KEYCTL_DESCRIBE),
        ctypes.c_int(key),
        buffer,
        ctypes.c_size_t(256),
    )
    _check(length, "keyctl", name)
    perm = int(buffer.value.split(b";")[3], 16)
    result = _syscall(
        _NR["keyctl"],
        ctypes.c_int(_KEYCTL_SETPERM),
        ctypes.c_int(key),
        ctypes.c_uint(perm | _KEY_USR_SEARCH),
    )
    _check(result, "keyctl", name)


# bpf(2), for the cgroup v2 device filter (asyncinit/cgroups/_bpf.py builds the program)
BPF_PROG_LOAD = 5
BPF_PROG_ATTACH = 8
BPF_PROG_DETACH = 9
BPF_PROG_GET_FD_BY_ID = 13
BPF_PROG_QUERY = 16
BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6
BPF_F_ALLOW_MULTI = 2
BPF_F_REPLACE = 4


class _BpfProgLoad(ctypes.Structure):
    _fields_ = (
        ("prog_type", ctypes.c_uint32),
        ("insn_cnt", ctypes.c_uint32),
        ("insns", ctypes.c_uint64),
        ("license", ctypes.c_uint64),
        ("log_level", ctypes.c_uint32),
        ("log_size", ctypes.c_uint32),
        ("log_buf", ctypes.c_uint64),
        ("kern_version", ctypes.c_uint32),
        ("prog_flags", ctypes.c_uint32),
        ("prog_name", ctypes.c_char * 16),
        ("prog_ifindex", ctypes.c_uint32),
        ("expected_attach_type", ctypes.c_uint32),
    )


class _BpfAttach(ctypes.Structure):
    _fields_ = (
        ("target_fd", ctypes.c_uint32),
        ("attach_bpf_fd", ctypes.c_uint32),
        ("attach_type", ctypes.c_uint32),
        ("attach_flags", ctypes.c_uint32),
        ("replace_bpf_fd", ctypes.c_uint32),
    )


class _BpfQuery(ctypes.Structure):
    _fields_ = (
        ("target_fd", ctypes.c_uint32),
        ("attach_type", ctypes.c_uint32),
        ("query_flags", ctypes.c_uint32),
        ("attach_flags", ctypes.c_uint32),
        ("prog_ids", ctypes.c_uint64),
        ("prog_cnt", ctypes.c_uint32),
    )


def _bpf(cmd: int, attr: ctypes.Structure, operation: str, path: str | None = None) -> int:
    result = _syscall(
        _NR["bpf"], ctypes.c_int(cmd), ctypes.byref(attr), ctypes.c_uint(ctypes.sizeof(attr))
    )
    return _check(result, operation, path)


def bpf_prog_load(prog_type: int, insns: bytes, license: str, attach_type: int = 0) -> int:
    """BPF_PROG_LOAD: an fd of the verified program.  The verifier's log is in the error."""
    code = ctypes.create_string_buffer(insns, len(insns))
    lic = ctypes.create_string_buffer(license.encode())
    log = ctypes.create_string_buffer(65536)
    attr = _BpfProgLoad(
        prog_type=prog_type,
        insn_cnt=len(insns) // 8,
        insns=ctypes.addressof(code),
        license=ctypes.addressof(lic),
        expected_attach_type=attach_type,
    )
    try:
        return _bpf(BPF_PROG_LOAD, attr, "bpf(BPF_PROG_LOAD)")
    except OSError as error:
        if error.errno != 22:  # EINVAL: load again with the verifier's log, to say why
            raise
    attr.log_level, attr.log_size, attr.log_buf = 1, len(log), ctypes.addressof(log)
    try:
        return _bpf(BPF_PROG_LOAD, attr, "bpf(BPF_PROG_LOAD)")
    except OSError as error:
        lines = log.value.decode(errors="replace").strip().splitlines()
        error.strerror = f"{error.strerror}: {lines[-1] if lines else 'no verifier log'}"
        raise


def bpf_prog_attach(
    target_fd: int, prog_fd: int, attach_type: int, flags: int, replace_fd: int = 0
) -> None:
    attr = _BpfAttach(target_fd, prog_fd, attach_type, flags, replace_fd)
    _bpf(BPF_PROG_ATTACH, attr, "bpf(BPF_PROG_ATTACH)")


def bpf_prog_detach(target_fd: int, prog_fd: int, attach_type: int) -> None:
    attr = _BpfAttach(target_fd, prog_fd, attach_type, 0, 0)
    _bpf(BPF_PROG_DETACH, attr, "bpf(BPF_PROG_DETACH)")


def bpf_prog_query(target_fd: int, attach_type: int) -> list[int]:
    """The ids of the programs attached to ``target_fd`` (not the inherited ones)."""
    size = 64
    while True:
        ids = (ctypes.c_uint32 * size)()
        attr = _BpfQuery(target_fd, attach_type, 0, 0, ctypes.addressof(ids), size)
        try:
            _bpf(BPF_PROG_QUERY, attr, "bpf(BPF_PROG_QUERY)")
        except OSError as error:
            if error.errno == 28 and attr.prog_cnt > size:  # ENOSPC: prog_cnt says how many
                size = attr.prog_cnt
                continue
            raise
        return list(ids[: attr.prog_cnt])


class _BpfGetId(ctypes.Structure):
    _fields_ = (
        ("id", ctypes.c_uint32),
        ("next_id", ctypes.c_uint32),
        ("open_flags", ctypes.c_uint32),
    )


def bpf_prog_get_fd_by_id(prog_id: int) -> int:
    return _bpf(BPF_PROG_GET_FD_BY_ID, _BpfGetId(prog_id, 0, 0), "bpf(BPF_PROG_GET_FD_BY_ID)")


# inotify(7), for cgroup v2 event files (memory.events, cgroup.events)
IN_MODIFY = 0x2
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC


def inotify_init() -> int:
    return _check(_libc.inotify_init1(ctypes.c_int(IN_NONBLOCK | IN_CLOEXEC)), "inotify_init1")


def inotify_add_watch(fd: int, path: str, mask: int) -> int:
    result = _libc.inotify_add_watch(ctypes.c_int(fd), _encode(path), ctypes.c_uint32(mask))
    return _check(result, "inotify_add_watch", path)


# clone3(2) with CLONE_INTO_CGROUP (Linux 5.7): a child born in a cgroup v2 directory,
# with no migration (on v1 and v2 a move into cgroup.procs waits for an RCU grace period)
CLONE_INTO_CGROUP = 0x200000000


class _CloneArgs(ctypes.Structure):
    _fields_ = tuple(
        (name, ctypes.c_uint64)
        for name in (
            "flags",
            "pidfd",
            "child_tid",
            "parent_tid",
            "exit_signal",
            "stack",
            "stack_size",
            "tls",
            "set_tid",
            "set_tid_size",
            "cgroup",
        )
    )


# PyDLL keeps the GIL across the call: the child must come back holding it, as from fork()
_pyapi = ctypes.PyDLL(None, use_errno=True)
_pysyscall = _pyapi.syscall
_pysyscall.restype = ctypes.c_long


def fork_into_cgroup(cgroup_fd: int) -> int:
    """fork(), the child starting inside the cgroup v2 directory ``cgroup_fd``.

    Python's fork hooks run as for ``os.fork`` (PyOS_BeforeFork/AfterFork_*).  The
    child's glibc still caches the parent's thread id (glibc's own fork refreshes
    it); CPython and glibc's signal and thread calls ask the kernel, so only
    priority-inheritance mutexes would notice: call it from a single-threaded
    process (the fork server) and keep the child's use of such locks nil.
    """
    args = _CloneArgs(flags=CLONE_INTO_CGROUP, exit_signal=17, cgroup=cgroup_fd)  # SIGCHLD
    ctypes.pythonapi.PyOS_BeforeFork()
    pid = _pysyscall(_NR["clone3"], ctypes.byref(args), ctypes.c_size_t(ctypes.sizeof(args)))
    err = ctypes.get_errno()
    if pid == 0:
        ctypes.pythonapi.PyOS_AfterFork_Child()
        return 0
    ctypes.pythonapi.PyOS_AfterFork_Parent()
    if pid == -1:
        error = OSError(err, f"clone3: {os.strerror(err)}")
        error.operation = "clone3"  # type: ignore[attr-defined]
        raise error
    return int(pid)


@functools.cache
def has_clone_into_cgroup() -> bool:
    """Whether this kernel has clone3(CLONE_INTO_CGROUP) (5.7; a seccomp filter may
    hide clone3 with ENOSYS or EPERM).  Asked with an fd that is no cgroup directory, so
    no process is ever made: EBADF answers yes; ENOSYS, E2BIG or EINVAL, no."""
    fd = os.open("/", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        args = _CloneArgs(flags=CLONE_INTO_CGROUP, exit_signal=17, cgroup=fd)
        pid = _libc.syscall(
            ctypes.c_long(_NR["clone3"]), ctypes.byref(args), ctypes.c_size_t(ctypes.sizeof(args))
        )
        err = ctypes.get_errno()
    finally:
        os.close(fd)
    if pid == 0:  # "/" a cgroup v2 directory: cannot be, but never run on as a copy
        os._exit(0)
    if pid > 0:
        os.waitpid(pid, 0)
    return pid > 0 or err == errno.EBADF


# Per-process attributes: process.scheduler, process.ioPriority, linux.personality
_NR.update(
    {
        "x86_64": {"sched_setattr": 314, "ioprio_set": 251, "personality": 135},
        "aarch64": {"sched_setattr": 274, "ioprio_set": 30, "personality": 92},
    }.get(_ARCH, {"sched_setattr": 314, "ioprio_set": 251, "personality": 135})
)
IOPRIO_WHO_PROCESS = 1


class _SchedAttr(ctypes.Structure):
    """struct sched_attr, SCHED_ATTR_SIZE_VER1 (with the utilization clamps)."""

    _fields_ = (
        ("size", ctypes.c_uint32),
        ("sched_policy", ctypes.c_uint32),
        ("sched_flags", ctypes.c_uint64),
        ("sched_nice", ctypes.c_int32),
        ("sched_priority", ctypes.c_uint32),
        ("sched_runtime", ctypes.c_uint64),
        ("sched_deadline", ctypes.c_uint64),
        ("sched_period", ctypes.c_uint64),
        ("sched_util_min", ctypes.c_uint32),
        ("sched_util_max", ctypes.c_uint32),
    )


def sched_setattr(
    policy: int, flags: int, nice: int, priority: int, runtime: int, deadline: int, period: int
) -> None:
    """sched_setattr(0, attr, 0): the calling thread's policy and parameters."""
    attr = _SchedAttr(
        ctypes.sizeof(_SchedAttr), policy, flags, nice, priority, runtime, deadline, period, 0, 0
    )
    result = _syscall(_NR["sched_setattr"], ctypes.c_int(0), ctypes.byref(attr), ctypes.c_uint(0))
    _check(result, "sched_setattr")


def ioprio_set(value: int) -> None:
    """ioprio_set(IOPRIO_WHO_PROCESS, 0, value): the calling thread's I/O priority."""
    result = _syscall(
        _NR["ioprio_set"], ctypes.c_int(IOPRIO_WHO_PROCESS), ctypes.c_int(0), ctypes.c_int(value)
    )
    _check(result, "ioprio_set")


def personality(persona: int) -> int:
    """personality(2); returns the previous persona."""
    return _check(_syscall(_NR["personality"], ctypes.c_ulong(persona)), "personality")
