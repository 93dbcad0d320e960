"""exec's remaining settings: the container's as created, --cgroup, LSM flags, CPU affinity,
Container.exec with a pty and passed fds.

Differential against runc 1.1.5 where runc has the feature: an exec'd process gets the
container's seccomp filter as created whatever becomes of the bundle (runc's saved
config), the container's capabilities and oom_score_adj where a process.json sets
none; ``--cgroup`` joins a sub-cgroup; ``--apparmor`` and ``--process-label`` fail on
a host without those LSMs.  process.execCPUAffinity is runc 1.2's (1.1.5 ignores it):
checked on our own, the ``initial`` CPUs on the runtime's child before it joins the
cgroups, the ``final`` ones in the process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

import asyncinit
from tests.support import CHECKOUT, oci
from tests.support.configs import base_config
from tests.support.containers import MakeConfig, read_all
from tests.support.oci import Runtime, new_id

pytestmark = pytest.mark.integration

runtime = oci.runtime
write_config = oci.write_config

#: mkdir fails with EACCES under this filter; everything else is allowed
DENY_MKDIR = {
    "defaultAction": "SCMP_ACT_ALLOW",
    "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}],
}
#: the shell's view of what the tests compare: mkdir's result, capabilities, oom_score_adj
PROBE = (
    "mkdir /dev/shm/d$$ 2>/dev/null; echo mkdir=$?; grep -E '^Cap(Eff|Bnd)' /proc/self/status; "
    "echo oom=$(cat /proc/self/oom_score_adj); echo E=$E"
)


def process_file(tmp_path: Path, **fields: Any) -> str:
    process = {"args": ["sh", "-c", PROBE], "cwd": "/", "user": {"uid": 0, "gid": 0}}
    process["env"] = ["PATH=/bin", "E=file"]
    process.update(fields)
    path = tmp_path / f"process-{len(list(tmp_path.glob('process-*')))}.json"
    path.write_text(json.dumps(process))
    return str(path)


@pytest.fixture
def started(runtime: Runtime, write_config: Callable[..., Path]) -> Iterator[tuple[str, Path]]:
    """A started container (sleep) with a seccomp filter and oomScoreAdj 123; its bundle."""
    bundle = write_config("sleep", "1000")
    config = json.loads((bundle / "config.json").read_text())
    config["linux"]["seccomp"] = DENY_MKDIR
    config["process"]["oomScoreAdj"] = 123
    (bundle / "config.json").write_text(json.dumps(config))
    cid = new_id()
    assert runtime("create", "--bundle", str(bundle), cid)[0] == 0
    assert runtime("start", cid)[0] == 0
    yield cid, bundle
    runtime("delete", "--force", cid)


CONTAINER_CAPS = "CapEff:\t0000000020000420\nCapBnd:\t0000000020000420\n"


def test_settings_as_created_whatever_the_bundle_becomes(
    runtime: Runtime, started: tuple[str, Path], tmp_path: Path
) -> None:
    """The filter of create's config, after the bundle's config lost it and then
    vanished; without --process, the process is the bundle's as it is now (runc)."""
    cid, bundle = started
    config = json.loads((bundle / "config.json").read_text())
    del config["linux"]["seccomp"]
    config["process"]["env"].append("E=edited")
    (bundle / "config.json").write_text(json.dumps(config))
    expected = f"mkdir=1\n{CONTAINER_CAPS}oom=123\nE=file\n"
    assert runtime("exec", "--process", process_file(tmp_path), cid) == (0, expected, "")
    edited = expected.replace("E=file", "E=edited")
    assert runtime("exec", cid, "sh", "-c", PROBE) == (0, edited, "")
    (bundle / "config.json").unlink()
    assert runtime("exec", "--process", process_file(tmp_path), cid) == (0, expected, "")
    assert runtime("exec", cid, "true") == (
        255,
        "",
        "exec failed: JSON specification file config.json not found",
    )


def test_unset_fields_are_the_containers(
    runtime: Runtime, started: tuple[str, Path], tmp_path: Path
) -> None:
    """A process.json without capabilities gets the container's (not the runtime's
    full set), its oom_score_adj; its own capabilities replace them."""
    cid, _ = started
    code, out, err = runtime("exec", "--process", process_file(tmp_path), cid)
    assert (code, err) == (0, "")
    assert CONTAINER_CAPS in out
    assert "oom=123\n" in out
    own = process_file(tmp_path, capabilities={"bounding": ["CAP_KILL"]})
    code, out, err = runtime("exec", "--process", own, cid)
    assert "CapEff:\t0000000000000020\nCapBnd:\t0000000000000020\n" in out, err


def test_lsm_flags_without_the_lsm(runtime: Runtime, started: tuple[str, Path]) -> None:
    """This host has no LSM: a profile or label asked for fails the exec, as in runc."""
    enabled = Path("/sys/module/apparmor/parameters/enabled")
    if enabled.is_file() and enabled.read_text().startswith("Y"):
        pytest.skip("AppArmor is enabled here (tests/integration/test_apparmor.py covers it)")
    cid, _ = started
    code, out, err = runtime("exec", "--apparmor", "no-such-profile", cid, "true")
    assert (code, out) == (255, "")
    assert err.startswith("exec failed: "), err
    assert "apparmor" in err.lower()


# --- process.execCPUAffinity (runc 1.2) -----------------------------------------------------

two_cpus = pytest.mark.skipif(
    not {0, 1} <= os.sched_getaffinity(0), reason="needs CPUs 0 and 1 in our affinity"
)


def _allowed(out: str) -> str:
    return out.split("Cpus_allowed_list:", 1)[1].split(maxsplit=1)[0]


@two_cpus
@pytest.mark.parametrize("runtime", ["asyncinit"], indirect=True)
def test_exec_cpu_affinity_final(
    runtime: Runtime, write_config: Callable[..., Path], tmp_path: Path
) -> None:
    """``final`` from the container's config, then from a process.json (which wins);
    the init keeps its own affinity (the spec: not for the init)."""
    bundle = write_config("sleep", "1000")
    config = json.loads((bundle / "config.json").read_text())
    config["process"]["execCPUAffinity"] = {"final": "1"}
    (bundle / "config.json").write_text(json.dumps(config))
    cid = new_id()
    assert runtime("create", "--bundle", str(bundle), cid)[0] == 0
    try:
        assert runtime("start", cid)[0] == 0
        grep = ["grep", "Cpus_allowed_list", "/proc/self/status"]
        code, out, err = runtime("exec", cid, *grep)
        assert (code, _allowed(out)) == (0, "1"), err
        own = process_file(tmp_path, args=grep, execCPUAffinity={"initial": "1", "final": "0"})
        code, out, err = runtime("exec", "--process", own, cid)
        assert (code, _allowed(out)) == (0, "0"), err
        init = json.loads(runtime("state", cid)[1])["pid"]
        assert os.sched_getaffinity(init) == os.sched_getaffinity(0)
        offline = process_file(tmp_path, args=["true"], execCPUAffinity={"initial": "8000"})
        code, out, err = runtime("exec", "--process", offline, cid)
        assert (code, out) == (255, ""), err
        assert "process.execCPUAffinity.initial" in err, err
    finally:
        runtime("delete", "--force", cid)


_HOLD = """
import os, sys
sys.path.insert(0, sys.argv[1])
from asyncinit.config import load_config
from asyncinit.forkserver._exec import fork_exec
from asyncinit.oci._state import process_start_time
from asyncinit.parent._exec import exec_plan, process_from_args
from asyncinit.sync_pipe import receive_blocking

spec = load_config(sys.argv[2])
pid = int(sys.argv[3])
process = process_from_args(spec.process, ["true"])
plan = exec_plan(spec, process, pid, process_start_time(pid))
plan["process"]["exec_cpu_affinity"] = {"initial": [1], "final": [0]}
child = fork_exec(plan)
message = receive_blocking(child.sync)  # ready: in the namespaces, not yet in the cgroups
with open(f"/proc/{child.pid}/status") as f:
    before = next(line.split()[1] for line in f if line.startswith("Cpus_allowed_list"))
cgroups = open(f"/proc/{child.pid}/cgroup").read() == open(f"/proc/{pid}/cgroup").read()
print(message.kind, before, cgroups, flush=True)
os.kill(child.pid, 9)
os.waitpid(child.pid, 0)
"""


@two_cpus
@pytest.mark.parametrize("runtime", ["asyncinit"], indirect=True)
def test_exec_cpu_affinity_initial_is_the_joining_childs(
    runtime: Runtime, started: tuple[str, Path]
) -> None:
    """``initial``: the runtime's child runs on those CPUs from before it joins the
    container's namespaces until the cgroups (runc 1.2 starts it so)."""
    cid, bundle = started
    init = json.loads(runtime("state", cid)[1])["pid"]
    result = subprocess.run(
        [sys.executable, "-c", _HOLD, str(CHECKOUT), str(bundle / "config.json"), str(init)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.stdout.split() == ["ready", "1", "False"], result.stderr


# --- Container.exec: a pty, passed fds; a loaded handle without its bundle -------------------


@pytest.mark.anyio
async def test_container_exec_with_a_pty(make_config: MakeConfig) -> None:
    async with await asyncinit.spawn(make_config("sleep", "1000")) as container:
        process = await container.exec(
            ["sh", "-c", "tty; stty size; test -t 0 && echo tty; read x; echo got $x"],
            terminal=True,
            console_size=(24, 80),
        )
        assert (process.stdin, process.stdout, process.stderr) == (None, None, None)
        assert process.pty is not None
        output = b""
        with anyio.fail_after(60):
            while b"tty\r\n" not in output:
                output += await process.pty.receive()
            assert output.replace(b"\r", b"").split(b"\n")[:3] == [b"/dev/pts/0", b"24 80", b"tty"]
            await process.pty.send(b"typed\n")  # the pty echoes it, then sh reads it
            while b"got typed" not in output:
                output += await process.pty.receive()
        assert await process.wait() == 0
        await process.aclose()
        container.kill()


@pytest.mark.anyio
async def test_container_exec_pass_fds(make_config: MakeConfig) -> None:
    """Passed fds arrive at 3, 4, ... without LISTEN_FDS (runc exec's --preserve-fds);
    nothing else of ours reaches the process."""
    async with await asyncinit.spawn(make_config("sleep", "1000")) as container:
        read_end, write_end = os.pipe()
        other_read, other_write = os.pipe()
        try:
            process = await container.exec(
                ["sh", "-c", "echo one >&3; echo two >&4; echo L=$LISTEN_FDS; ls /proc/self/fd"],
                pass_fds=[write_end, other_write],
            )
        finally:
            os.close(write_end)
            os.close(other_write)
        out = await read_all(process.stdout)
        assert await process.wait() == 0
        assert out.split() == ["L=", "0", "1", "2", "3", "4", "5"]  # 5: ls's directory
        assert os.read(read_end, 100) == b"one\n"
        assert os.read(other_read, 100) == b"two\n"
        os.close(read_end)
        os.close(other_read)
        await process.aclose()
        with pytest.raises(asyncinit.UsageError, match="pass_fds"):
            await container.exec(["true"], pass_fds=[-1])
        with pytest.raises(TypeError, match="terminal"):
            await container.exec(["true"], terminal=1)  # type: ignore[arg-type]
        container.kill()


@pytest.mark.anyio
async def test_loaded_handle_execs_with_the_config_as_created(bundle: Path, tmp_path: Path) -> None:
    """load() needs no bundle: the container's config (seccomp filter included) is the
    one create() recorded."""
    config = base_config("sleep", "1000")
    config["root"]["path"] = str(bundle / "rootfs")
    config["linux"]["seccomp"] = DENY_MKDIR
    (bundle / "config.json").write_text(json.dumps(config))
    root = tmp_path / "root"
    created = await asyncinit.create(bundle, root=root, container_id="exec16-load")
    async with created:
        await created.start()
        (bundle / "config.json").unlink()
        loaded = asyncinit.load("exec16-load", root=root)
        process = await loaded.exec(["sh", "-c", "mkdir /dev/shm/x; echo $?"], stderr=None)
        assert await read_all(process.stdout) == "1\n"
        assert await process.wait() == 0
        await process.aclose()
        created.kill()


# --- --cgroup (runc 1.1's sub-cgroups) ------------------------------------------------------


def test_exec_into_a_sub_cgroup(
    runtime: Runtime, started: tuple[str, Path], tmp_path: Path
) -> None:
    """``--cgroup pids:sub`` joins the existing ``sub`` below the container's v1 pids
    cgroup and leaves the other hierarchies at the init's; runc's syntax errors."""
    from asyncinit.parent._exec_cgroups import init_cgroups

    cid, _ = started
    init = json.loads(runtime("state", cid)[1])["pid"]
    pids = [directory for controllers, directory in init_cgroups(init) if "pids" in controllers]
    if not pids:
        pytest.skip("no v1 pids hierarchy here")
    assert runtime("exec", "--cgroup", "a:b:c", cid, "true") == (
        255,
        "",
        "exec failed: invalid --cgroup argument: a:b:c",
    )
    code, out, err = runtime("exec", "--cgroup", "pids:nosuch", cid, "true")
    assert (code, out) == (255, ""), err
    assert err.startswith("exec failed: "), err
    sub = Path(pids[0], "sub")
    sub.mkdir()
    pid_file = tmp_path / "exec.pid"
    try:
        code, _, err = runtime(
            "exec", "-d", "--pid-file", str(pid_file), "--cgroup", "pids:sub", cid, "sleep", "1000"
        )
        assert code == 0, err
        pid = int(pid_file.read_text())
        try:
            lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
        finally:
            os.kill(pid, 9)
        for line, init_line in zip(
            lines, Path(f"/proc/{init}/cgroup").read_text().splitlines(), strict=True
        ):
            assert line == (init_line + "/sub" if ":pids:" in init_line else init_line)
    finally:
        runtime("delete", "--force", cid)
        for _ in range(100):
            try:
                sub.rmdir()
                break
            except FileNotFoundError:
                break
            except OSError:  # EBUSY until the killed process is gone
                time.sleep(0.05)
