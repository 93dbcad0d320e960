"""Differential against runc 1.1.5, container against container: the same bundle, the same answers.

Each runtime runs the same bundle (busybox plus ``sysprobe``, a tiny static C
program making one raw syscall: tests/data/sysprobe.c) under the same profile;
a shell script probes a list of syscalls, one process each, and prints
"name exit-status result" ("err ERRNO", "ok", or nothing when the filter
killed it: status 159, SIGSYS). The two outputs must be equal line for line,
and a few lines are checked against what the profile says, so that two equal
wrong answers cannot pass. Profiles: moby's default as docker gives it to runc
(runc's default capabilities), and a hand-made one with every action and every
argument operator, on x86_64, i386 (``int $0x80``) and x32 numbers.
"""

from __future__ import annotations

import contextlib
import copy
import shutil
import subprocess
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.support import DATA
from tests.support.configs import base_config
from tests.support.containers import needs_root, run
from tests.support.runc import RUNC, runc_run
from tests.support.seccomp import RUNC_DEFAULT_CAPS, Agent, moby_default

pytestmark = [
    pytest.mark.integration,
    pytest.mark.anyio,
    needs_root,
    pytest.mark.skipif(RUNC is None, reason="runc is not installed"),
]

SIGSYS_STATUS = "159"
PODMAN_PROFILE = Path("/usr/share/containers/seccomp.json")

#: name, sysprobe arguments (x86_64 numbers unless -i386; 0x4000.... are x32)
MOBY_PROBES = (
    ("getpid", "39"),
    ("unshare", "272 0x04000000"),
    ("mount", "165"),
    ("keyctl", "250 0 0xfffffffd"),
    ("kexec_load", "246"),
    ("ptrace-peekuser", "101 3 99999"),
    ("personality-query", "135 0xffffffff"),
    ("personality-linux32", "135 8"),
    ("personality-other", "135 4"),
    ("clone3", "435"),
    ("chroot", "161 0"),
    ("socket-vsock", "41 40 1 0"),
    ("socket-inet", "41 2 1 0"),
    ("bpf", "321"),
    ("perf_event_open", "298"),
    ("userfaultfd", "323"),
    ("open_by_handle_at", "304"),
    ("init_module", "175"),
    ("reboot", "169"),
    ("setns", "308 0 0"),
    ("acct", "163 0"),
    ("io_uring_setup", "425 0 0"),
    ("above-the-highest", "470"),
    ("far-above", "1000"),
    ("i386-getpid", "-i386 20"),
    ("i386-unshare", "-i386 310 0x04000000"),
    ("i386-chroot", "-i386 61 0"),
    ("i386-above", "-i386 470"),
    ("x32-getpid", "0x40000027"),
    ("x32-unshare", "0x40000110 0x04000000"),
)


def _cond(op: str, value: int, index: int = 0, value_two: int | None = None) -> dict[str, Any]:
    arg = {"index": index, "value": value, "op": op}
    if value_two is not None:
        arg["valueTwo"] = value_two
    return arg


def _errno(names: list[str], errno_ret: int, *args: dict[str, Any]) -> dict[str, Any]:
    return {"names": names, "action": "SCMP_ACT_ERRNO", "errnoRet": errno_ret, "args": list(args)}


def handmade(listener_path: str) -> dict[str, Any]:
    """Every operator (on syscalls failing EBADF for these fds if let through), every action."""
    return {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        # no "flags": runc 1.1.5 refuses them ("not yet supported by runc")
        "listenerPath": listener_path,
        "syscalls": [
            _errno(["fchdir"], 101, _cond("SCMP_CMP_EQ", 1000)),
            _errno(["fsync"], 102, _cond("SCMP_CMP_NE", 1000)),
            _errno(["fdatasync"], 103, _cond("SCMP_CMP_LT", 1000)),
            _errno(["syncfs"], 104, _cond("SCMP_CMP_LE", 1000)),
            _errno(["fchmod"], 105, _cond("SCMP_CMP_GT", 1000)),
            _errno(["fchown"], 106, _cond("SCMP_CMP_GE", 1000)),
            _errno(["dup"], 107, _cond("SCMP_CMP_MASKED_EQ", 0xFF00, value_two=0x300)),
            _errno(["dup2"], 108, _cond("SCMP_CMP_EQ", 1000), _cond("SCMP_CMP_EQ", 1001, 1)),
            # two conditions on one argument: runc makes them two rules (either matches)
            _errno(["flock"], 109, _cond("SCMP_CMP_EQ", 1001), _cond("SCMP_CMP_EQ", 1002)),
            _errno(["fstatfs"], 110, _cond("SCMP_CMP_EQ", 0x1_0000_03E8)),
            _errno(["create_module"], 4094),
            {"names": ["vserver"], "action": "SCMP_ACT_ERRNO"},
            {"names": ["sysfs"], "action": "SCMP_ACT_KILL_PROCESS"},
            {"names": ["ustat"], "action": "SCMP_ACT_KILL_THREAD"},
            {"names": ["uselib"], "action": "SCMP_ACT_KILL"},
            {"names": ["getpmsg"], "action": "SCMP_ACT_TRAP"},
            {"names": ["tuxcall"], "action": "SCMP_ACT_TRACE", "errnoRet": 7},
            {"names": ["security"], "action": "SCMP_ACT_LOG"},
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"},
        ],
    }


HANDMADE_PROBES = (
    ("eq-hit", "81 1000"),
    ("eq-miss", "81 1001"),
    ("ne-hit", "74 999"),
    ("ne-miss", "74 1000"),
    ("lt-hit", "75 999"),
    ("lt-miss", "75 1000"),
    ("le-hit", "306 1000"),
    ("le-miss", "306 1001"),
    ("gt-hit", "91 1001"),
    ("gt-miss", "91 1000"),
    ("ge-hit", "93 1000"),
    ("ge-miss", "93 999"),
    ("masked-eq-hit", "32 0x3ff"),
    ("masked-eq-miss", "32 0x4ff"),
    ("two-args-hit", "33 1000 1001"),
    ("two-args-miss", "33 1000 1002"),
    ("same-arg-first", "73 1001"),
    ("same-arg-second", "73 1002"),
    ("same-arg-miss", "73 1003"),
    ("64-bit-hit", "138 0x1000003e8"),
    ("64-bit-miss", "138 1000"),
    ("errno-4094", "174"),
    ("errno-default", "236"),
    ("kill-process", "139"),
    ("kill-thread", "136"),
    ("kill", "134"),
    ("trap", "181"),
    ("trace-no-tracer", "184"),
    ("log", "185"),
    ("i386-eq-hit", "-i386 133 1000"),
    ("i386-eq-miss", "-i386 133 1001"),
    ("i386-kill-process", "-i386 135"),
    ("i386-getpid", "-i386 20"),
    ("x32-eq-hit", "0x40000051 1000"),
    ("x32-getpid", "0x40000027"),
)

NOTIFY_LINES = (
    'mkdir /dev/shm/denied 2>/dev/null; echo "notify-denied $?";'
    ' mkdir /dev/shm/ok; echo "notify-ok $?"'
)


def script(probes: tuple[tuple[str, str], ...], extra: str = "") -> str:
    lines = ['p() { name=$1; shift; out=$(/bin/sysprobe "$@" 2>&1); echo "$name $? $out"; }']
    lines += [f"p {name} {arguments}" for name, arguments in probes]
    return "\n".join([*lines, extra])


@pytest.fixture(scope="session")
def sysprobe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc is not installed: no static probe")
    binary = tmp_path_factory.mktemp("sysprobe") / "sysprobe"
    done = subprocess.run(
        [gcc, "-static", "-O2", "-o", str(binary), str(DATA / "sysprobe.c")],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot build a static probe: {done.stderr.strip()}")
    return binary


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def bundle_config(bundle: Path, busybox_image: Path, sysprobe: Path, text: str) -> dict[str, Any]:
    shutil.copytree(busybox_image, bundle / "rootfs", symlinks=True)
    shutil.copy(sysprobe, bundle / "rootfs" / "bin" / "sysprobe")
    config = copy.deepcopy(base_config("/bin/sh", "-c", text))
    config["root"]["path"] = str(bundle / "rootfs")
    # A trapped probe dumps no core into the rootfs, whatever this shell's limit.
    config["process"]["rlimits"].append({"type": "RLIMIT_CORE", "hard": 0, "soft": 0})
    return config


def answers_of(output: str) -> dict[str, str]:
    """ "exit-status result" by probe name."""
    answers = {}
    for line in output.splitlines():
        name, _, result = line.partition(" ")
        answers[name] = result.strip()
    return answers


async def ours_equal_runcs(bundle: Path, config: dict[str, Any], agent: Path | None = None) -> str:
    """Run the bundle with runc, then with asyncinit (each with a fresh agent if
    ``agent`` names its socket); the outputs must be equal line for line."""
    outputs = []
    for runtime in ("runc", "asyncinit"):
        with contextlib.ExitStack() as stack:
            if agent is not None:
                agent.unlink(missing_ok=True)
                stack.enter_context(Agent(agent, denied=b"/dev/shm/denied"))
            if runtime == "runc":
                outputs.append(await anyio.to_thread.run_sync(runc_run, bundle, config))
            else:
                with anyio.fail_after(60):
                    code, out, err = await run(config)
                assert code == 0, err
                outputs.append(out)
    theirs, ours = outputs
    assert ours.splitlines() == theirs.splitlines()
    return ours


@pytest.mark.parametrize("nnp", [True, False], ids=["no_new_privs", "privileged-load"])
async def test_moby_default_profile_same_answers_as_runc(
    tmp_path: Path, busybox_image: Path, sysprobe: Path, nnp: bool
) -> None:
    config = bundle_config(tmp_path, busybox_image, sysprobe, script(MOBY_PROBES))
    config["process"]["noNewPrivileges"] = nnp
    config["linux"]["seccomp"] = moby_default(caps=RUNC_DEFAULT_CAPS)
    answers = answers_of(await ours_equal_runcs(tmp_path, config))
    assert answers["getpid"] == "0 ok"
    for denied in ("unshare", "mount", "keyctl", "kexec_load", "chroot", "personality-other"):
        assert answers[denied] == "0 err 1", denied  # EPERM, moby's defaultErrnoRet
    assert answers["personality-linux32"] == "0 ok"
    assert answers["clone3"] == "0 err 38"  # moby's ENOSYS rule without CAP_SYS_ADMIN
    assert answers["above-the-highest"] == "0 err 38"  # the -ENOSYS stub
    assert answers["i386-getpid"] == "0 ok"
    assert answers["i386-unshare"] == "0 err 1"


@pytest.mark.skipif(not PODMAN_PROFILE.exists(), reason=f"{PODMAN_PROFILE} is not installed")
async def test_podman_default_profile_same_answers_as_runc(
    tmp_path: Path, busybox_image: Path, sysprobe: Path
) -> None:
    """containers/common's profile: ENOSYS by default, explicit EPERM rules."""
    config = bundle_config(tmp_path, busybox_image, sysprobe, script(MOBY_PROBES))
    config["linux"]["seccomp"] = moby_default(caps=RUNC_DEFAULT_CAPS, source=PODMAN_PROFILE)
    answers = answers_of(await ours_equal_runcs(tmp_path, config))
    assert answers["getpid"] == "0 ok"
    assert answers["chroot"] == "0 err 1"  # explicit EPERM rules
    assert answers["unshare"] == "0 err 1"
    assert answers["far-above"] == "0 err 38"  # the stub (and the default: ENOSYS)


async def test_every_action_and_operator_same_answers_as_runc(
    tmp_path: Path, busybox_image: Path, sysprobe: Path
) -> None:
    socket_path = tmp_path / "agent.sock"
    config = bundle_config(tmp_path, busybox_image, sysprobe, script(HANDMADE_PROBES, NOTIFY_LINES))
    config["linux"]["seccomp"] = handmade(str(socket_path))
    answers = answers_of(await ours_equal_runcs(tmp_path, config, agent=socket_path))
    for name, errno_ret in (("eq", 101), ("ne", 102), ("lt", 103), ("le", 104), ("gt", 105)):
        assert answers[f"{name}-hit"] == f"0 err {errno_ret}", name
        assert answers[f"{name}-miss"] == "0 err 9", name  # EBADF: the kernel's answer
    assert answers["masked-eq-hit"] == "0 err 107"
    assert answers["two-args-miss"] == "0 err 9"
    assert answers["same-arg-second"] == "0 err 109"
    assert answers["64-bit-hit"] == "0 err 110"
    assert answers["64-bit-miss"] == "0 err 9"
    assert answers["errno-4094"] == "0 err 4094"
    for killed in ("kill-process", "kill-thread", "kill", "trap", "i386-kill-process"):
        assert answers[killed] == SIGSYS_STATUS, killed
    assert answers["trace-no-tracer"] == "0 err 38"
    assert answers["i386-eq-hit"] == "0 err 101"
    assert answers["notify-denied"] == "1"
    assert answers["notify-ok"] == "0"
