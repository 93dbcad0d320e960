"""The v1 -> v2 value conversions runc makes (the runtime-spec speaks cgroup v1)."""

from __future__ import annotations

import math


def cpu_shares_to_weight(shares: int) -> int:
    """cpu.shares [2, 262144] -> cpu.weight [1, 10000], 0 (unset) stays 0.

    Current runc and crun (opencontainers/cgroups >= 0.0.2): a quadratic fit in
    log2 space that maps the defaults onto each other (1024 -> 100), where the old
    linear formula ``1 + (shares - 2) * 9999 // 262142`` gave 39 and left every
    container at a third of a default systemd service's weight.
    """
    if shares == 0:
        return 0
    if shares <= 2:
        return 1
    if shares >= 262144:
        return 10000
    log = math.log2(shares)
    exponent = (log * log + 125 * log) / 612.0 - 7.0 / 34.0
    return math.ceil(10**exponent)


def cpu_shares_to_weight_linear(shares: int) -> int:
    """runc <= 1.3's linear conversion, kept for the differential test against runc 1.1."""
    return 0 if shares == 0 else 1 + (shares - 2) * 9999 // 262142


def blkio_weight_to_io_weight(weight: int) -> int:
    """blkio.weight [10, 1000] -> io.weight [1, 10000]."""
    return 0 if weight == 0 else 1 + (weight - 10) * 9999 // 990


def swap_to_v2(swap: int, memory: int) -> int:
    """The spec's memory+swap total -> v2's swap alone (memory.swap.max).

    -1 is "max", 0 "unset".  Memory unlimited with swap unset means both
    unlimited (cgroup v1 behaviour).  The caller has checked swap >= memory.
    """
    if memory == -1 and swap == 0:
        return -1
    if swap in (-1, 0) or memory == -1:
        return swap
    return swap - memory
