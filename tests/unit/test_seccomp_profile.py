"""linux.seccomp: typed profile, validation naming JSON paths, compiler and its cache.

Pure logic on real libseccomp output: the BPF programs are checked with a
reference interpreter (tests/support/seccomp.py: run_bpf), including the architectures
this machine cannot call; tests/integration/test_seccomp_kernel.py loads them for real.
"""

from __future__ import annotations

import base64
import errno
from typing import Any

import pytest

from asyncinit.seccomp import (
    SeccompProfileError,
    _bpf,
    _kernel,
    compile_profile,
    parse_profile,
    profile_to_json,
)
from asyncinit.seccomp._compile import _compile_cached
from tests.support.seccomp import moby_default, run_bpf

X86_64 = _kernel.AUDIT_ARCH_X86_64
I386 = _kernel.AUDIT_ARCH_I386
AARCH64 = 0xC00000B7
X32 = _kernel.X32_SYSCALL_BIT
ALLOW = _kernel.RET_ALLOW
KILL = _kernel.RET_KILL_THREAD


def errno_ret(code: int) -> int:
    return _kernel.RET_ERRNO | code


def problems(data: Any) -> list[str]:
    with pytest.raises(SeccompProfileError) as caught:
        parse_profile(data)
    return caught.value.errors


FULL = {
    "defaultAction": "SCMP_ACT_ERRNO",
    "defaultErrnoRet": 38,
    "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
    "flags": ["SECCOMP_FILTER_FLAG_LOG"],
    "listenerPath": "/run/agent.sock",
    "listenerMetadata": "meta",
    "syscalls": [
        {"names": ["getpid"], "action": "SCMP_ACT_ALLOW"},
        {"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"},
        {
            "names": ["personality"],
            "action": "SCMP_ACT_ERRNO",
            "errnoRet": 13,
            "args": [{"index": 0, "value": 8, "valueTwo": 0, "op": "SCMP_CMP_EQ"}],
        },
    ],
}


def test_profile_round_trips_through_json() -> None:
    profile = parse_profile(FULL)
    assert profile.syscalls[2].args[0].op == "SCMP_CMP_EQ"
    assert profile.uses_notify
    assert profile_to_json(profile) == FULL


def test_every_problem_is_reported_at_once_with_its_json_path() -> None:
    bad = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "defaultErrnoRet": 1,
        "architectures": ["SCMP_ARCH_Z80"],
        "flags": ["SECCOMP_FILTER_FLAG_NOPE"],
        "listenerMetadata": "x",
        "syscalls": [
            {"names": [], "action": "SCMP_ACT_ALLOW"},
            {"names": ["getpid"], "action": "SCMP_ACT_FROB"},
            {"names": ["getpid"], "action": "SCMP_ACT_KILL", "errnoRet": 1},
            {
                "names": ["personality", ""],
                "action": "SCMP_ACT_ERRNO",
                "errnoRet": 5000,
                "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQUALS"}],
            },
            {"names": ["write"], "action": "SCMP_ACT_NOTIFY"},
        ],
    }
    assert problems(bad) == [
        "linux.seccomp.defaultErrnoRet: SCMP_ACT_ALLOW takes no errno"
        " (only SCMP_ACT_ERRNO and SCMP_ACT_TRACE do)",
        'linux.seccomp.architectures[0]: unknown architecture "SCMP_ARCH_Z80"',
        'linux.seccomp.flags[0]: unknown flag "SECCOMP_FILTER_FLAG_NOPE"',
        "linux.seccomp.listenerMetadata: must not be set without listenerPath",
        "linux.seccomp.syscalls[0].names: must name at least one syscall",
        'linux.seccomp.syscalls[1].action: unknown action "SCMP_ACT_FROB"',
        "linux.seccomp.syscalls[2].errnoRet: SCMP_ACT_KILL takes no errno"
        " (only SCMP_ACT_ERRNO and SCMP_ACT_TRACE do)",
        "linux.seccomp.syscalls[3].names[1]: must not be empty",
        "linux.seccomp.syscalls[3].errnoRet: must be an errno between 0 and 4095, got 5000",
        "linux.seccomp.syscalls[3].args[0].index: must be between 0 and 5, got 6",
        'linux.seccomp.syscalls[3].args[0].op: unknown operator "SCMP_CMP_EQUALS"',
        "linux.seccomp.syscalls[4].names[0]: SCMP_ACT_NOTIFY cannot be used for write:"
        " the init needs it to hand the listener to its parent",
    ]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({}, ["linux.seccomp.defaultAction: required"]),
        ([], ["linux.seccomp: must be an object, got an array"]),
        (
            {"defaultAction": "SCMP_ACT_NOTIFY"},
            ["linux.seccomp.defaultAction: SCMP_ACT_NOTIFY cannot be the default action"],
        ),
        (
            {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": "getpid"}]},
            [
                "linux.seccomp.syscalls[0].action: required",
                "linux.seccomp.syscalls[0].names: must be an array, got a string",
            ],
        ),
        (
            {
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [
                    {"names": ["x"], "action": "SCMP_ACT_ERRNO", "errnoRet": True},
                    {
                        "names": ["x"],
                        "action": "SCMP_ACT_ERRNO",
                        "args": [{"index": 0, "value": -1}],
                    },
                ],
            },
            [
                "linux.seccomp.syscalls[0].errnoRet: must be an unsigned integer, got a boolean",
                "linux.seccomp.syscalls[1].args[0].op: required",
                "linux.seccomp.syscalls[1].args[0].value: must be an unsigned integer, got -1",
            ],
        ),
        (
            {
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [
                    {
                        "names": ["x"],
                        "action": "SCMP_ACT_ERRNO",
                        "args": [{"index": 0, "value": 2**64, "op": "SCMP_CMP_EQ"}],
                    }
                ],
            },
            ["linux.seccomp.syscalls[0].args[0].value: must be a uint64, got 18446744073709551616"],
        ),
    ],
)
def test_structural_problems_name_the_field(data: Any, expected: list[str]) -> None:
    assert problems(data) == expected


def test_the_path_prefix_is_the_callers() -> None:
    with pytest.raises(SeccompProfileError, match=r"^profile\.json\.defaultAction: required$"):
        parse_profile({}, "profile.json")


def test_moby_default_profile_parses_and_compiles() -> None:
    profile = parse_profile(moby_default())
    compiled = compile_profile(profile)
    assert compiled.skipped == ()  # Debian's libseccomp knows every name moby lists
    assert 500 < len(compiled.program) // 8 < 2000
    assert compiled.flags == _kernel.FLAG_SPEC_ALLOW  # runc's default when flags is absent


def test_compile_is_cached_by_canonical_json_without_the_listener() -> None:
    first = compile_profile(parse_profile(FULL))
    other = dict(FULL, listenerPath="/elsewhere.sock", listenerMetadata="other")
    assert compile_profile(parse_profile(other)) is first
    hits = _compile_cached.cache_info().hits
    reordered = dict(reversed(list(FULL.items())))
    assert compile_profile(parse_profile(reordered)) is first
    assert _compile_cached.cache_info().hits == hits + 1


def test_plan_carries_the_program() -> None:
    compiled = compile_profile(parse_profile(FULL))
    plan = compiled.to_plan()
    assert base64.b64decode(plan["program"]) == compiled.program
    assert plan["flags"] == compiled.flags


@pytest.mark.parametrize(
    ("flags", "notify", "expected"),
    [
        (None, False, _kernel.FLAG_SPEC_ALLOW),
        ([], False, 0),
        (["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_TSYNC"], False, 3),
        (["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"], False, 0),
        (["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"], True, 0x20 | _kernel.FLAG_NEW_LISTENER),
        (["SECCOMP_FILTER_FLAG_TSYNC"], True, 0x1 | 0x8 | 0x10),
    ],
)
def test_filter_flags(flags: list[str] | None, notify: bool, expected: int) -> None:
    data: dict[str, Any] = {"defaultAction": "SCMP_ACT_ALLOW"}
    if flags is not None:
        data["flags"] = flags
    if notify:
        data["syscalls"] = [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]
    assert compile_profile(parse_profile(data)).flags == expected


def test_names_unknown_to_libseccomp_are_skipped_as_runc_does() -> None:
    data = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["no_such_syscall", "mount"], "action": "SCMP_ACT_ERRNO"}],
    }
    compiled = compile_profile(parse_profile(data))
    assert compiled.skipped == ("no_such_syscall",)
    assert run_bpf(compiled.program, 165, X86_64) == errno_ret(errno.EPERM)


def test_architecture_unknown_to_the_host_library_is_an_error() -> None:
    data = {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_SHEB"]}
    with pytest.raises(SeccompProfileError, match=r"architectures\[0\]: SCMP_ARCH_SHEB is unknown"):
        compile_profile(parse_profile(data))


def test_the_first_of_two_rules_for_a_syscall_wins() -> None:
    """libseccomp's rule, hence runc's: a later rule for the same syscall is ignored."""
    data = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            {"names": ["mount"], "action": "SCMP_ACT_ERRNO"},
            {"names": ["getpid", "mount"], "action": "SCMP_ACT_KILL"},
        ],
    }
    program = compile_profile(parse_profile(data)).program
    assert run_bpf(program, 165, X86_64) == errno_ret(errno.EPERM)
    assert run_bpf(program, 39, X86_64) == KILL


# -- decisions of the compiled programs ---------------------------------------------


@pytest.fixture(scope="module")
def moby() -> bytes:
    return compile_profile(parse_profile(moby_default())).program


@pytest.mark.parametrize(
    ("arch", "nr", "args", "expected"),
    [
        (X86_64, 39, (), ALLOW),  # getpid
        (X86_64, 272, (), errno_ret(1)),  # unshare
        (X86_64, 165, (), errno_ret(1)),  # mount
        (X86_64, 250, (), errno_ret(1)),  # keyctl
        (X86_64, 246, (), errno_ret(1)),  # kexec_load
        (X86_64, 163, (), errno_ret(1)),  # acct: below the newest named, not named: default
        (X86_64, 435, (), errno_ret(errno.ENOSYS)),  # clone3: moby's own rule
        (X86_64, 452, (), errno_ret(errno.ENOSYS)),  # fchmodat2: newer than the profile
        (X86_64, 135, (8,), ALLOW),  # personality(PER_LINUX32)
        (X86_64, 135, (0x40000,), errno_ret(1)),  # personality(ADDR_NO_RANDOMIZE)
        (X86_64, 135, (8 | (1 << 32),), errno_ret(1)),  # the upper half counts too
        (X86_64, 56, (0x7E020000,), errno_ret(1)),  # clone with namespace flags
        (X86_64, 56, (0x11,), ALLOW),  # clone(SIGCHLD|...) without them (MASKED_EQ)
        (X86_64, 41, (40,), errno_ret(1)),  # socket(AF_VSOCK): SCMP_CMP_NE
        (X86_64, 41, (2,), ALLOW),  # socket(AF_INET)
        (X86_64, X32 | 39, (), ALLOW),  # x32 getpid
        (X86_64, X32 | 272, (), errno_ret(1)),  # x32 unshare
        (X86_64, X32 | 520, (), ALLOW),  # x32 execve (x32's own number)
        (X86_64, X32 | 0x7FFF, (), errno_ret(errno.ENOSYS)),  # beyond x32's newest
        (I386, 20, (), ALLOW),  # i386 getpid
        (I386, 310, (), errno_ret(1)),  # i386 unshare
        (I386, 21, (), errno_ret(1)),  # i386 mount
        (I386, 460, (), errno_ret(errno.ENOSYS)),
        (AARCH64, 172, (), KILL),  # an architecture the profile does not list
    ],
)
def test_moby_profile_decisions(
    moby: bytes, arch: int, nr: int, args: tuple[int, ...], expected: int
) -> None:
    assert run_bpf(moby, nr, arch, args) == expected


def test_an_i386_or_x32_call_cannot_bypass_an_x86_64_only_profile() -> None:
    data = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [{"names": ["unshare"], "action": "SCMP_ACT_ERRNO"}],
    }
    program = compile_profile(parse_profile(data)).program
    assert run_bpf(program, 272, X86_64) == errno_ret(errno.EPERM)
    assert run_bpf(program, 310, I386) == KILL  # unshare through int 0x80
    assert run_bpf(program, X32 | 272, X86_64) == KILL


def test_allow_by_default_needs_no_stub() -> None:
    data = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mount"], "action": "SCMP_ACT_ERRNO"}],
    }
    program = _bpf.decode(compile_profile(parse_profile(data)).program)
    assert all(insn.k != errno_ret(errno.ENOSYS) for insn in program)


def test_without_architectures_the_native_one_still_gets_the_stub() -> None:
    data = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_ALLOW"}],
    }
    program = compile_profile(parse_profile(data)).program
    assert run_bpf(program, 39, X86_64) == ALLOW
    assert run_bpf(program, 38, X86_64) == errno_ret(errno.EPERM)
    assert run_bpf(program, 40, X86_64) == errno_ret(errno.ENOSYS)


@pytest.mark.parametrize(
    ("maxima", "cases"),
    [
        (
            {X86_64: {X86_64: 100}},
            [(X86_64, 100, "filter"), (X86_64, 101, "enosys"), (X86_64, X32 | 5, "filter")],
        ),
        (
            {X86_64: {_bpf.X32_TOKEN: X32 | 50}},
            [(X86_64, X32 | 51, "enosys"), (X86_64, 999, "filter")],
        ),
        (
            {X86_64: {X86_64: 100, _bpf.X32_TOKEN: X32 | 50}, I386: {I386: 30}},
            [
                (X86_64, 101, "enosys"),
                (X86_64, X32 | 50, "filter"),
                (X86_64, X32 | 51, "enosys"),
                (I386, 31, "enosys"),
                (I386, 30, "filter"),
                (AARCH64, 10**6, "filter"),
            ],
        ),
        (
            {_kernel.AUDIT_ARCH_S390X: {_kernel.AUDIT_ARCH_S390X: 400}},
            [(_kernel.AUDIT_ARCH_S390X, 0, "enosys"), (_kernel.AUDIT_ARCH_S390X, 1, "filter")],
        ),
    ],
)
def test_enosys_stub_branches(
    maxima: dict[int, dict[int, int]], cases: list[tuple[int, int, str]]
) -> None:
    marker = _kernel.RET_TRAP  # stands for "fell through to libseccomp's filter"
    program = _bpf.encode([*_bpf.enosys_stub(maxima), _bpf.Instruction(_bpf.RET_K, 0, 0, marker)])
    for arch, nr, where in cases:
        expected = errno_ret(errno.ENOSYS) if where == "enosys" else marker
        assert run_bpf(program, nr, arch) == expected, (hex(arch), nr)
