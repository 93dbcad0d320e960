"""Compiled filters loaded into real processes: each test runs tests/support/seccomp_probe.py.

The child loads the plan with asyncinit.seccomp._load (the init's loader: no
libseccomp), then makes raw syscalls; the results are the kernel's. No
container: a filter is per process, so a child is enough to see it in force.
"""

from __future__ import annotations

import errno
import os
import signal
from typing import Any

import pytest

from asyncinit.seccomp import compile_profile, parse_profile
from asyncinit.seccomp._load import install_filter
from tests.support.seccomp import moby_default, probe

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="probes as root (CAP_SYS_ADMIN)")

EPERM, ENOSYS = -errno.EPERM, -errno.ENOSYS


def plan(data: dict[str, Any]) -> Any:
    return compile_profile(parse_profile(data)).to_plan()


def allow_but(*rules: dict[str, Any], **extra: Any) -> Any:
    return plan({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": list(rules), **extra})


@pytest.fixture(scope="module")
def moby_plan() -> Any:
    return plan(moby_default())


@pytest.fixture(scope="module")
def int80_works() -> bool:
    """int 0x80 from a 64-bit process needs the kernel's ia32 emulation."""
    code, report = probe(None, ["i386:getpid", "getpid"])
    return code == 0 and report["after"][0] == report["after"][1]


def test_moby_default_blocks_what_docker_blocks(moby_plan: Any) -> None:
    probes = ["unshare", "mount", "keyctl", "kexec_load", "acct", "getpid", "seccomp_status"]
    code, report = probe(moby_plan, probes, before=["unshare", "keyctl", "seccomp_status"])
    assert code == 0, report
    unshare, keyctl, status = report["before"]
    assert (unshare, status) == (0, 0)  # the same calls work without the filter
    assert keyctl > 0
    assert report["after"][:5] == [EPERM] * 5
    assert report["after"][5] > 0
    assert report["after"][6] == 2  # /proc/self/status "Seccomp: 2"


def test_moby_default_returns_enosys_for_syscalls_newer_than_the_profile(moby_plan: Any) -> None:
    """runc's stub: set_mempolicy_home_node (450, Linux 6.0; moby allows it only with
    CAP_SYS_NICE) and fchmodat2 (452, 6.6) are newer than every name the profile lists."""
    probes = ["set_mempolicy_home_node", "fchmodat2", "clone3", "acct", "syscall:1000"]
    code, report = probe(moby_plan, probes, before=["set_mempolicy_home_node"])
    assert code == 0
    assert report["before"] == [-errno.EINVAL]  # exists on this kernel
    assert report["after"] == [ENOSYS, ENOSYS, ENOSYS, EPERM, ENOSYS]


def test_moby_default_runs_a_program(moby_plan: Any, tmp_path: Any) -> None:
    """busybox under the filter: fork, exec, files, pipes (what docker's default allows)."""
    script = f"echo hello > {tmp_path}/out && cat {tmp_path}/out | tr a-z A-Z"
    code, report = probe(moby_plan, [], run=["/bin/busybox", "sh", "-c", script])
    assert code == 0, report
    assert report["run"] == [0, "HELLO\n"]


def test_errno_ret_comes_back_as_that_errno(tmp_path: Any) -> None:
    target = str(tmp_path / "denied")
    filter_plan = allow_but(
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EROFS},
        {"names": ["acct"], "action": "SCMP_ACT_ERRNO"},
    )
    code, report = probe(filter_plan, [f"mkdir:{target}", f"mkdirat:{target}", "acct"])
    assert code == 0
    assert report["after"] == [-errno.EROFS, -errno.EROFS, EPERM]
    assert not os.path.exists(target)


def test_default_errno_ret() -> None:
    data = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": errno.EACCES,
        "syscalls": [{"names": _PYTHON_NEEDS, "action": "SCMP_ACT_ALLOW"}],
    }
    code, report = probe(plan(data), ["acct", "unshare"])
    assert code == 0, report
    # acct (163) is below the newest syscall named (exit_group, 231): the default errno;
    # unshare (272) is above it: ENOSYS, as if the profile predated it (runc's stub)
    assert report["after"] == [-errno.EACCES, ENOSYS]


#: what the probe needs after loading a deny-by-default filter: report and exit
_PYTHON_NEEDS = ["write", "exit_group", "getpid", "rt_sigaction", "munmap", "brk", "mmap"]


def test_argument_filters() -> None:
    """personality: 0 and 8 allowed, anything else denied (SCMP_CMP_EQ); masked and ranges."""
    filter_plan = allow_but(
        {
            "names": ["personality"],
            "action": "SCMP_ACT_ERRNO",
            "args": [
                {"index": 0, "value": 0xFFFFFFFF & ~8, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}
            ],
        },
        {
            "names": ["personality"],
            "action": "SCMP_ACT_ERRNO",
            "errnoRet": errno.EINVAL,
            "args": [{"index": 0, "value": 0x40000, "op": "SCMP_CMP_EQ"}],
        },
        {
            "names": ["acct"],
            "action": "SCMP_ACT_ERRNO",
            "errnoRet": errno.E2BIG,
            "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}],
        },
    )
    # MASKED_EQ: (arg & ~8) == 0, i.e. 0 or 8, is denied with EPERM; ADDR_NO_RANDOMIZE: EINVAL
    probes = ["personality:0", "personality:8", "personality:0x40000", "personality:0x20000"]
    code, report = probe(filter_plan, probes)
    assert code == 0
    assert report["after"][:3] == [EPERM, EPERM, -errno.EINVAL]
    assert report["after"][3] >= 0  # UNAME26 matched neither rule


def test_kill_process_kills_the_whole_process_from_any_thread() -> None:
    filter_plan = allow_but({"names": ["acct"], "action": "SCMP_ACT_KILL_PROCESS"})
    code, report = probe(filter_plan, ["thread:acct", "getpid"])
    assert code == -signal.SIGSYS
    assert report == {}


def test_kill_thread_kills_only_the_calling_thread() -> None:
    for action in ("SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD"):
        filter_plan = allow_but({"names": ["acct"], "action": action})
        code, report = probe(filter_plan, ["thread:acct", "getpid"])
        assert code == 0, action
        assert report["after"][0] == "killed"
        code, _ = probe(filter_plan, ["acct"])
        assert code == -signal.SIGSYS  # the only thread: the process dies


def test_trap_trace_and_log() -> None:
    filter_plan = allow_but(
        {"names": ["acct"], "action": "SCMP_ACT_TRAP"},
        {"names": ["unshare"], "action": "SCMP_ACT_TRACE"},
        {"names": ["getpid"], "action": "SCMP_ACT_LOG"},
    )
    code, report = probe(filter_plan, ["trap:acct", "unshare", "getpid"])
    assert code == 0
    trapped, traced, logged = report["after"]
    assert trapped == "trapped"  # SIGSYS, catchable
    assert traced == ENOSYS  # no tracer attached: the kernel says ENOSYS
    assert logged > 0  # allowed (and logged)


def test_a_profile_that_denies_execve_fails_exec_with_a_clear_errno() -> None:
    filter_plan = allow_but({"names": ["execve", "execveat"], "action": "SCMP_ACT_ERRNO"})
    code, report = probe(filter_plan, ["execve"])
    assert code == 0
    assert report["after"] == [EPERM]


def test_without_no_new_privs_loading_needs_cap_sys_admin() -> None:
    """Why runc loads the filter before dropping capabilities unless noNewPrivileges."""
    filter_plan = allow_but({"names": ["acct"], "action": "SCMP_ACT_ERRNO"})
    code, report = probe(filter_plan, ["acct"], drop_sys_admin=True)
    assert (code, report) == (0, {"load_error": errno.EACCES})
    code, report = probe(filter_plan, ["acct"], drop_sys_admin=True, nnp=True)
    assert (code, report["after"]) == (0, [EPERM])


@pytest.mark.parametrize(
    ("flags", "filtered"), [([], False), (["SECCOMP_FILTER_FLAG_TSYNC"], True)]
)
def test_tsync_filters_the_other_threads_too(flags: list[str], filtered: bool) -> None:
    filter_plan = allow_but({"names": ["acct"], "action": "SCMP_ACT_ERRNO"}, flags=flags)
    code, report = probe(filter_plan, ["acct"], idle_thread="acct")
    assert code == 0
    assert report["after"] == [EPERM]
    assert report["thread"] == (EPERM if filtered else -errno.ENOENT)


def test_log_and_spec_allow_flags_load() -> None:
    flags = ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"]
    code, report = probe(
        allow_but({"names": ["acct"], "action": "SCMP_ACT_ERRNO"}, flags=flags), ["acct"]
    )
    assert (code, report["after"]) == (0, [EPERM])


def test_i386_syscalls_through_int_0x80_obey_the_profile(moby_plan: Any, int80_works: bool) -> None:
    if not int80_works:
        pytest.skip("this kernel runs without ia32 emulation")
    code, report = probe(
        moby_plan, ["i386:getpid", "i386:unshare", "i386:mount", "i386:keyctl", "getpid"]
    )
    assert code == 0
    assert report["after"][0] == report["after"][4]
    assert report["after"][1:4] == [EPERM, EPERM, EPERM]


def test_an_i386_syscall_cannot_bypass_an_x86_64_only_profile(int80_works: bool) -> None:
    if not int80_works:
        pytest.skip("this kernel runs without ia32 emulation")
    filter_plan = allow_but(
        {"names": ["unshare"], "action": "SCMP_ACT_ERRNO"}, architectures=["SCMP_ARCH_X86_64"]
    )
    code, report = probe(filter_plan, ["unshare"])
    assert (code, report["after"]) == (0, [EPERM])
    code, _ = probe(filter_plan, ["i386:unshare"])
    assert code == -signal.SIGSYS  # libseccomp's bad-architecture action


def test_x32_syscalls_obey_the_profile(moby_plan: Any) -> None:
    """x32 numbers carry bit 30 under AUDIT_ARCH_X86_64; the filter sees them even
    when the kernel's x32 ABI is off (then an allowed call gets ENOSYS from the kernel)."""
    code, report = probe(moby_plan, ["x32:unshare", "x32:mount", "x32:getpid"])
    assert code == 0
    assert report["after"][:2] == [EPERM, EPERM]
    assert report["after"][2] != EPERM
    filter_plan = allow_but(
        {"names": ["unshare"], "action": "SCMP_ACT_ERRNO"}, architectures=["SCMP_ARCH_X86_64"]
    )
    code, _ = probe(filter_plan, ["x32:getpid"])
    assert code == -signal.SIGSYS


def test_the_loader_refuses_a_malformed_program() -> None:
    with pytest.raises(ValueError, match="not a BPF program"):
        install_filter(b"\0" * 12, 0)
    with pytest.raises(ValueError, match="not a BPF program"):
        install_filter(b"", 0)
