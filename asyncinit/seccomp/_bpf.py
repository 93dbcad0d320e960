"""Classic BPF for seccomp: instruction encoding and runc's -ENOSYS stub.

A libseccomp filter gives its default action to every syscall no rule names,
including syscalls newer than the profile. With an ERRNO(EPERM) default, a libc
that tries ``clone3`` and would fall back to ``clone`` on ENOSYS fails instead.
runc (``libcontainer/seccomp/patchbpf/enosys_linux.go``) therefore prepends a
stub that answers ENOSYS for any syscall number above the highest one the
profile names, per architecture; this is the same stub, built here:

    ld  [4]                          ; seccomp_data.arch
    jeq #AUDIT_ARCH_A, section_A     ; one per native architecture
    ja  filter
  section_A:
    ld  [0]                          ; seccomp_data.nr
    [x86_64] jset #X32_SYSCALL_BIT   ; x32 and x86_64 share AUDIT_ARCH_X86_64:
                                     ; the bit picks which maximum applies
    jgt #max_A, enosys, filter
    ...
  enosys:
    ret #SECCOMP_RET_ERRNO|ENOSYS
  filter:                            ; libseccomp's program, unchanged
"""

from __future__ import annotations

import errno
import struct
from collections.abc import Mapping
from typing import Final, NamedTuple

from . import _kernel

__all__ = ["Instruction", "decode", "encode", "enosys_stub"]

# opcodes
LD_W_ABS: Final = 0x20
JMP_JA: Final = 0x05
JMP_JEQ_K: Final = 0x15
JMP_JGT_K: Final = 0x25
JMP_JGE_K: Final = 0x35
JMP_JSET_K: Final = 0x45
RET_K: Final = 0x06

NR_OFFSET: Final = 0
ARCH_OFFSET: Final = 4
_ENOSYS: Final = _kernel.RET_ERRNO | errno.ENOSYS
_INSN: Final = struct.Struct("=HBBI")

_JA_FILTER: Final = "ja filter"  # an unconditional jump to libseccomp's program

#: scmp-arch tokens that share an AUDIT_ARCH value with another (x32 is x86_64 + a bit)
X32_TOKEN: Final = 0x4000003E


class Instruction(NamedTuple):
    """``struct sock_filter``: opcode, jump-if-true, jump-if-false, constant."""

    code: int
    jt: int
    jf: int
    k: int


def encode(program: list[Instruction]) -> bytes:
    return b"".join(_INSN.pack(*insn) for insn in program)


def decode(raw: bytes) -> list[Instruction]:
    if len(raw) % _INSN.size:
        raise ValueError(f"a BPF program is a multiple of {_INSN.size} bytes, got {len(raw)}")
    return [Instruction(*fields) for fields in _INSN.iter_unpack(raw)]


class _Jump(NamedTuple):
    """A conditional jump to labels, resolved once every label has an address."""

    code: int
    k: int
    true: str
    false: str


def enosys_stub(maxima: Mapping[int, Mapping[int, int]]) -> list[Instruction]:
    """The stub for ``maxima``: AUDIT_ARCH -> {scmp arch token: highest syscall number}.

    x86_64 is the only AUDIT_ARCH two scmp arches share (x86_64 and x32); the
    stub tells them apart by X32_SYSCALL_BIT, as the kernel does.
    """
    body: list[Instruction | _Jump | str] = [Instruction(LD_W_ABS, 0, 0, ARCH_OFFSET)]
    sections: list[Instruction | _Jump | str] = []
    for audit_arch in sorted(maxima):
        per_token = maxima[audit_arch]
        if not per_token:
            continue
        label = f"arch:{audit_arch:#x}"
        body.append(_Jump(JMP_JEQ_K, audit_arch, label, "next"))
        sections += [label, Instruction(LD_W_ABS, 0, 0, NR_OFFSET)]
        sections += _section(audit_arch, per_token)
    body.append(_JA_FILTER)
    return _assemble([*body, *sections, "enosys", Instruction(RET_K, 0, 0, _ENOSYS)])


def _section(audit_arch: int, per_token: Mapping[int, int]) -> list[Instruction | _Jump | str]:
    out: list[Instruction | _Jump | str] = []
    if audit_arch in (_kernel.AUDIT_ARCH_S390, _kernel.AUDIT_ARCH_S390X):
        # setup(2), number 0, multiplexes syscalls the kernel does not know on s390
        out.append(_Jump(JMP_JEQ_K, 0, "enosys", "next"))
    if audit_arch != _kernel.AUDIT_ARCH_X86_64:
        if len(per_token) != 1:
            raise ValueError(f"architectures overlap on AUDIT_ARCH {audit_arch:#x}")
        (highest,) = per_token.values()
        return [*out, _Jump(JMP_JGT_K, highest, "enosys", "filter")]
    x32 = per_token.get(X32_TOKEN)
    x86_64 = next((v for token, v in per_token.items() if token != X32_TOKEN), None)
    if x86_64 is not None and x32 is not None:
        return [
            _Jump(JMP_JSET_K, _kernel.X32_SYSCALL_BIT, "x32", "next"),
            _Jump(JMP_JGT_K, x86_64, "enosys", "filter"),
            "x32",
            _Jump(JMP_JGT_K, x32, "enosys", "filter"),
        ]
    if x86_64 is not None:  # x32 calls go to the filter, whose arch check refuses them
        return [
            _Jump(JMP_JSET_K, _kernel.X32_SYSCALL_BIT, "filter", "next"),
            _Jump(JMP_JGT_K, x86_64, "enosys", "filter"),
        ]
    assert x32 is not None
    return [
        _Jump(JMP_JSET_K, _kernel.X32_SYSCALL_BIT, "next", "filter"),
        _Jump(JMP_JGT_K, x32, "enosys", "filter"),
    ]


def _assemble(items: list[Instruction | _Jump | str]) -> list[Instruction]:
    """Resolve labels (strings; "next" is the next instruction, "filter" the first after
    the stub) into jump offsets; conditional jumps must stay within 255."""
    addresses: dict[str, int] = {}
    code: list[Instruction | _Jump | str] = []
    for item in items:
        if isinstance(item, str) and item != _JA_FILTER:
            addresses[item] = len(code)
        else:
            code.append(item)
    addresses["filter"] = len(code)

    def offset(label: str, at: int) -> int:
        target = at + 1 if label == "next" else addresses[label]
        distance = target - at - 1
        if not 0 <= distance <= 255:
            raise ValueError(f"BPF jump to {label} out of range ({distance})")
        return distance

    program = []
    for at, item in enumerate(code):
        if isinstance(item, Instruction):
            program.append(item)
        elif isinstance(item, _Jump):
            program.append(
                Instruction(item.code, offset(item.true, at), offset(item.false, at), item.k)
            )
        else:
            program.append(Instruction(JMP_JA, 0, 0, addresses["filter"] - at - 1))
    return program
