"""bpf(2) for the cgroup v2 device filter (asyncinit/cgroups/_bpf.py builds the program)."""

from __future__ import annotations

import ctypes

from . import NR, check, syscall

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
    result = syscall(
        NR["bpf"], ctypes.c_int(cmd), ctypes.byref(attr), ctypes.c_uint(ctypes.sizeof(attr))
    )
    return check(result, operation, path)


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
