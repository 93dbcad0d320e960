"""The cgroup v2 device filter: an eBPF ``BPF_PROG_TYPE_CGROUP_DEVICE`` program.

Generated from the emulator's rules the way runc and crun generate theirs: load
the access type, access mask, major and minor of ``struct bpf_cgroup_dev_ctx``
into r2..r5, then one block per exception that jumps to the next block on any
mismatch and returns the exception's verdict; the last block returns the
default.  Instructions are ``struct bpf_insn`` (8 bytes, little endian here).
"""

from __future__ import annotations

import struct
import sys
from typing import Final

from ._devices import WILDCARD, Emulator, Rule

LICENSE: Final = "Apache"

# struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }
_DEV_BLOCK: Final = 1
_DEV_CHAR: Final = 2
_ACCESS: Final = {"m": 1, "r": 2, "w": 4}

# opcodes (<linux/bpf_common.h>, <linux/bpf.h>)
_LDX_MEM_W: Final = 0x61  # BPF_LDX | BPF_MEM | BPF_W
_ALU32_AND_K: Final = 0x54
_ALU32_RSH_K: Final = 0x74
_ALU32_MOV_K: Final = 0xB4
_ALU32_MOV_X: Final = 0xBC
_JNE_K: Final = 0x55  # BPF_JMP | BPF_JNE | BPF_K
_JNE_X: Final = 0x5D
_EXIT: Final = 0x95

_Insn = tuple[int, int, int, int, int]  # code, dst, src, off, imm


def _imm32(value: int) -> int:
    """A u32 as the signed 32-bit immediate the instruction stores."""
    return value - (1 << 32) if value >= 1 << 31 else value


def _prologue() -> list[_Insn]:
    return [
        (_LDX_MEM_W, 2, 1, 0, 0),  # r2 = ctx->access_type
        (_ALU32_AND_K, 2, 0, 0, 0xFFFF),  # w2 &= 0xffff: the device type
        (_LDX_MEM_W, 3, 1, 0, 0),  # r3 = ctx->access_type
        (_ALU32_RSH_K, 3, 0, 0, 16),  # w3 >>= 16: the access mask
        (_LDX_MEM_W, 4, 1, 4, 0),  # r4 = ctx->major
        (_LDX_MEM_W, 5, 1, 8, 0),  # r5 = ctx->minor
    ]


def _block(rule: Rule) -> list[_Insn]:
    """Tests that jump past the block (offset patched later: None) and the verdict."""
    kind = _DEV_CHAR if rule.type == "c" else _DEV_BLOCK
    access = sum(_ACCESS[p] for p in rule.access)
    tests: list[tuple[int, int, int, int]] = [(_JNE_K, 2, 0, kind)]
    if access != 7:
        # only when every requested access is in the rule: (w3 & access) == w3
        tests += [(_ALU32_MOV_X, 1, 3, 0), (_ALU32_AND_K, 1, 0, access), (_JNE_X, 1, 3, 0)]
    if rule.major != WILDCARD:
        tests.append((_JNE_K, 4, 0, _imm32(rule.major)))
    if rule.minor != WILDCARD:
        tests.append((_JNE_K, 5, 0, _imm32(rule.minor)))
    count = len(tests) + 2
    insns: list[_Insn] = []
    for index, (code, dst, src, imm) in enumerate(tests):
        jumps = code in (_JNE_K, _JNE_X)
        insns.append((code, dst, src, count - index - 1 if jumps else 0, imm))
    insns += [(_ALU32_MOV_K, 0, 0, 0, int(rule.allow)), (_EXIT, 0, 0, 0, 0)]
    return insns


def device_filter(emulator: Emulator) -> bytes:
    """The program enforcing ``emulator``'s state, as raw ``struct bpf_insn`` bytes."""
    insns = _prologue()
    for rule in emulator.rules():
        insns += _block(rule)
    insns += [(_ALU32_MOV_K, 0, 0, 0, int(emulator.default_allow)), (_EXIT, 0, 0, 0, 0)]
    return encode(insns)


def encode(insns: list[_Insn]) -> bytes:
    regs_first = sys.byteorder == "little"
    out = bytearray()
    for code, dst, src, off, imm in insns:
        regs = (src << 4 | dst) if regs_first else (dst << 4 | src)
        out += struct.pack("=BBhi", code, regs, off, imm)
    return bytes(out)
