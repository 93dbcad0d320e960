"""runc exec, asyncinit against runc 1.1.5 on the same bundles; Container.exec; exec attacks.

Differential: the same create/start/exec sequences against both runtimes (each
with its own ``--root``) give the same outputs and exit codes, runc's error
messages, a pid file without newline.  Then what only a test of ours can see:
the exec'd process is in every namespace and cgroup of the init, holds no fd of
the runtime, and the runtime's child that joins the container is out of the
container's reach before it execs (CVE-2019-5736); ``--cwd`` cannot name a
host directory through a leaked fd (CVE-2024-21626).
"""

from __future__ import annotations

import array
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import asyncinit
from tests.support import CHECKOUT, oci
from tests.support.configs import base_config, in_own_user_namespace
from tests.support.oci import Runtime, new_id

pytestmark = pytest.mark.integration

runtime = oci.runtime  # the fixtures: each runtime with its own --root, a bundle's config
write_config = oci.write_config


@pytest.fixture
def running(runtime: Runtime, write_config: Callable[..., Path]) -> Iterator[str]:
    """A started container running ``sleep 1000``."""
    bundle = write_config("sleep", "1000")
    cid = new_id()
    assert runtime("create", "--bundle", str(bundle), cid)[0] == 0
    assert runtime("start", cid)[0] == 0
    yield cid
    runtime("delete", "--force", cid)


def test_output_exit_code_and_defaults(runtime: Runtime, running: str) -> None:
    script = "echo $HOME; id; pwd; echo $TERM; exit 7"
    assert runtime("exec", running, "sh", "-c", script) == (
        7,
        "/root\nuid=0(root) gid=0(root)\n/\nxterm\n",
        "",
    )


def test_env_cwd_user_gids(runtime: Runtime, running: str) -> None:
    code, out, err = runtime(
        "exec", "--cwd", "/tmp", "-e", "FOO=bar", "-u", "1000:1000", "-g", "7", "-g", "8",
        running, "sh", "-c", "pwd; echo $FOO $HOME; id",
    )  # fmt: skip
    assert (code, out, err) == (0, "/tmp\nbar /\nuid=1000 gid=1000 groups=7,8\n", "")


def test_capabilities_and_no_new_privs(runtime: Runtime, running: str) -> None:
    status = "grep -E '^(Cap(Prm|Eff|Bnd|Amb)|NoNewPrivs)' /proc/self/status"
    code, out, _ = runtime("exec", "-c", "CAP_SYS_ADMIN", running, "sh", "-c", status)
    assert code == 0
    assert "CapBnd:\t0000000020200420" in out
    assert "CapAmb:\t0000000000000000" in out
    assert "NoNewPrivs:\t1" in out  # the container's noNewPrivileges (runc spec's default)
    assert runtime("exec", "-c", "CAP_BOGUS", running, "true")[:2] == (0, "")  # runc: a warning


def test_signal_death_is_128_plus_n(runtime: Runtime, running: str) -> None:
    assert runtime("exec", running, "sh", "-c", "kill -TERM $$")[0] == 143


def test_exec_into_created_container(runtime: Runtime, write_config: Callable[..., Path]) -> None:
    """runc 1.1.5 runs it: the init's namespaces exist from create on."""
    cid = new_id()
    assert runtime("create", "--bundle", str(write_config("sleep", "1000")), cid)[0] == 0
    try:
        assert runtime("exec", cid, "echo", "hi") == (0, "hi\n", "")
        assert runtime.status(cid) == "created"
    finally:
        runtime("delete", "--force", cid)


def test_errors(runtime: Runtime, running: str) -> None:
    assert runtime("exec", "nope", "true") == (255, "", "exec failed: container does not exist")
    assert runtime("exec", running) == (255, "", "exec failed: process args cannot be empty")
    assert runtime("exec", "--cwd", "rel", running, "true") == (
        255,
        "",
        "exec failed: Cwd must be an absolute path",
    )
    assert runtime("exec", "-u", "foo", running, "true") == (
        255,
        "",
        'exec failed: parsing foo as int for uid failed: strconv.Atoi: parsing "foo": '
        "invalid syntax",
    )
    assert runtime("exec", "-t", "-d", running, "true") == (
        255,
        "",
        "exec failed: cannot allocate tty if runc will detach without setting console socket",
    )
    assert runtime("exec", "--console-socket", "/nonexistent", running, "true") == (
        255,
        "",
        "exec failed: cannot use console socket if runc will not detach or allocate tty",
    )
    for failing in (["--cwd", "/nonexistent", running, "pwd"], [running, "/nonexistent"]):
        code, out, err = runtime("exec", *failing)
        assert (code, out) == (255, ""), failing
        assert err.startswith("exec failed: unable to start container process: "), err
        assert "/nonexistent" in err
    assert runtime("kill", running, "KILL")[0] == 0
    assert runtime.wait_stopped(running) == "stopped"
    for detach in ([], ["-d"]):
        assert runtime("exec", *detach, running, "true") == (
            255,
            "",
            "exec failed: cannot exec in a stopped container",
        )


def test_detach_and_pid_file(runtime: Runtime, running: str, tmp_path: Path) -> None:
    pid_file = tmp_path / "exec.pid"
    assert runtime("exec", "-d", "--pid-file", str(pid_file), running, "sleep", "1000")[0] == 0
    text = pid_file.read_text()
    assert text == text.strip()  # no newline, as runc
    pid = int(text)
    init = json.loads(runtime("state", running)[1])["pid"]
    try:
        for kind in ("pid", "mnt", "net", "ipc", "uts"):
            assert os.readlink(f"/proc/{pid}/ns/{kind}") == os.readlink(f"/proc/{init}/ns/{kind}")
        assert Path(f"/proc/{pid}/cgroup").read_text() == Path(f"/proc/{init}/cgroup").read_text()
    finally:
        os.kill(pid, 9)


def test_process_file(runtime: Runtime, running: str, tmp_path: Path) -> None:
    """podman's way: every field from --process (the container's process is not used)."""
    process = base_config()["process"]
    process.update(
        args=["sh", "-c", "echo $X; pwd; id -u; exit 3"],
        env=["PATH=/bin", "X=from-file"],
        cwd="/etc",
        user={"uid": 65534, "gid": 65534},
    )
    path = tmp_path / "process.json"
    path.write_text(json.dumps(process))
    assert runtime("exec", "--process", str(path), running) == (3, "from-file\n/etc\n65534\n", "")


def test_no_runtime_fd_reaches_the_process(runtime: Runtime, running: str) -> None:
    """Only stdio (and ls's own directory fd) in the process; with --preserve-fds 1, fd 3."""
    code, out, _ = runtime("exec", running, "ls", "/proc/self/fd")
    assert (code, out.split()) == (0, ["0", "1", "2", "3"])
    script = "readlink /proc/self/fd/3; echo $LISTEN_FDS"
    result = subprocess.run(  # fd 3 opened by a shell for the runtime, which passes it on
        ["sh", "-c", 'exec "$@" 3</dev/null', "sh", *runtime.argv, "exec", "--preserve-fds",
         "1", running, "sh", "-c", script],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(CHECKOUT)},
        timeout=60,
        check=False,
    )  # fmt: skip
    # runc exec passes them without LISTEN_FDS (runc's run and create set it)
    assert (result.returncode, result.stdout) == (0, "/dev/null\n\n"), result.stderr


def _receive_master(server: socket.socket, got: list[int]) -> None:
    connection, _ = server.accept()
    with connection:
        fds = array.array("i")
        _, ancillary, _, _ = connection.recvmsg(64, socket.CMSG_SPACE(fds.itemsize))
        for level, kind, data in ancillary:
            if (level, kind) == (socket.SOL_SOCKET, socket.SCM_RIGHTS):
                fds.frombytes(data[: len(data) - len(data) % fds.itemsize])
        got.extend(fds)


def _read_pty(master: int) -> bytes:
    output = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: the slave side is closed
            return output
        if not chunk:
            return output
        output += chunk


def test_tty_through_console_socket(runtime: Runtime, running: str, tmp_path: Path) -> None:
    """podman's exec -t: --tty --detach --console-socket; the master arrives by SCM_RIGHTS."""
    path = str(tmp_path / "console.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    got: list[int] = []
    receiver = threading.Thread(target=_receive_master, args=(server, got))
    receiver.start()
    try:
        code, _, err = runtime(
            "exec", "-t", "-d", "--console-socket", path, running,
            "sh", "-c", "tty; test -t 0 && echo tty; sleep 0.2",
        )  # fmt: skip
        receiver.join(10)
    finally:
        server.close()
    assert code == 0, err
    assert len(got) == 1
    try:
        assert _read_pty(got[0]).split() == [b"/dev/pts/0", b"tty"]
    finally:
        os.close(got[0])


# --- attacks --------------------------------------------------------------------------------

_HOLD = """
import json, os, sys
sys.path.insert(0, sys.argv[1])
from asyncinit.forkserver._exec import fork_exec
from asyncinit.sync_pipe import receive_blocking
from asyncinit.parent._exec import exec_plan, process_from_args
from asyncinit.config import load_config
from asyncinit.oci._state import process_start_time

spec = load_config(sys.argv[2])
pid = int(sys.argv[3])
plan = exec_plan(spec, process_from_args(spec.process, ["true"]), pid, process_start_time(pid))
child = fork_exec(plan)
message = receive_blocking(child.sync)  # ready: in every namespace, waiting for "run"
print(message.kind, child.pid, flush=True)
sys.stdin.readline()
os.kill(child.pid, 9)
os.waitpid(child.pid, 0)
"""


_PROBE = (
    "readlink /proc/$0/exe >/dev/null 2>&1 && echo path opened || echo path denied; "
    "head -c1 /proc/$0/exe >/dev/null 2>&1 && echo read opened || echo read denied; "
    "(exec 3>>/proc/$0/exe) 2>/dev/null && echo write opened || echo write denied"
)


def _probe_exe(pid: int) -> list[str]:
    """As the root of ``pid``'s user namespace (every capability there), in its mount and
    pid namespaces, with the container's shell and /proc: ``pid``'s /proc/PID/exe as a link, for
    reading, for writing (append: nothing is truncated)."""
    command = ["nsenter", f"--target={pid}", "--user", "--mount", "--pid", "/bin/sh", "-c"]
    status = Path(f"/proc/{pid}/status").read_text()
    inside = next(line.split()[-1] for line in status.splitlines() if line.startswith("NSpid:"))
    result = subprocess.run(
        [*command, _PROBE, inside], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


@pytest.mark.parametrize("runtime", ["asyncinit"], indirect=True)
def test_joining_child_out_of_reach(runtime: Runtime, bundle: Path, tmp_path: Path) -> None:
    """CVE-2019-5736: the runtime's child that joined the container (the host's interpreter,
    waiting for ``run`` in every namespace of the container) cannot be opened through its
    /proc/PID/exe from inside.  The mapping is the rootless one (container root = our
    uid), where only PR_SET_DUMPABLE(0) stands in the way; the control shows the probe
    opens the exe of an ordinary exec'd process of the same container."""
    config = in_own_user_namespace(base_config("sleep", "1000"))
    config["root"]["path"] = "rootfs"
    (bundle / "config.json").write_text(json.dumps(config))
    cid = new_id()
    assert runtime("create", "--bundle", str(bundle), cid)[0] == 0
    try:
        init = json.loads(runtime("state", cid)[1])["pid"]
        pid_file = tmp_path / "sleep.pid"
        assert runtime("exec", "-d", "--pid-file", str(pid_file), cid, "sleep", "1000")[0] == 0
        control = _probe_exe(int(pid_file.read_text()))
        assert control[:2] == ["path opened", "read opened"]
        with subprocess.Popen(
            [sys.executable, "-c", _HOLD, str(CHECKOUT), str(bundle / "config.json"), str(init)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        ) as holder:
            assert holder.stdin is not None
            assert holder.stdout is not None
            try:
                kind, child = holder.stdout.readline().split()
                assert kind == "ready"
                assert os.readlink(f"/proc/{child}/ns/user") == os.readlink(f"/proc/{init}/ns/user")
                results = _probe_exe(int(child))
            finally:
                holder.stdin.write("\n")
                holder.stdin.close()
                holder.wait(10)
    finally:
        runtime("delete", "--force", cid)
    assert results == ["path denied", "read denied", "write denied"]


@pytest.mark.parametrize("runtime", ["asyncinit"], indirect=True)
def test_cwd_through_a_leaked_fd_fails(runtime: Runtime, running: str) -> None:
    """CVE-2024-21626: ``--cwd /proc/self/fd/N`` never lands on a host directory."""
    for fd in range(3, 12):
        code, out, err = runtime("exec", "--cwd", f"/proc/self/fd/{fd}", running, "pwd")
        assert (code, out) == (255, ""), (fd, out)
        assert "unable to start container process" in err


# --- Container.exec -------------------------------------------------------------------------


@pytest.fixture
def spawn_config(make_config: Callable[..., dict[str, Any]]) -> dict[str, Any]:
    return make_config("sleep", "1000")


async def _read_all(stream: Any) -> bytes:
    data = b""
    async for chunk in stream:
        data += chunk
    return bytes(data)


@pytest.mark.anyio
async def test_container_exec(spawn_config: dict[str, Any]) -> None:
    async with await asyncinit.spawn(spawn_config) as container:
        process = await container.exec(
            ["sh", "-c", "echo $FOO; id; pwd; cat; exit 5"],
            env=["FOO=bar"],
            cwd="/tmp",
            user=(5, 6),
        )
        assert process.stdin is not None
        assert process.stdout is not None
        await process.stdin.send(b"piped\n")
        await process.stdin.aclose()
        out = await _read_all(process.stdout)
        assert await process.wait() == 5
        assert out == b"bar\nuid=5 gid=6\n/tmp\npiped\n"
        ns = os.readlink(f"/proc/{container.pid}/ns/pid")
        sleeper = await container.exec(["sleep", "1000"], stdout=subprocess.DEVNULL)
        assert os.readlink(f"/proc/{sleeper.pid}/ns/pid") == ns
        sleeper.send_signal(15)
        assert await sleeper.wait() == 143
        await sleeper.aclose()
        await process.aclose()
        container.kill()


@pytest.mark.anyio
async def test_container_exec_failure_is_init_error(spawn_config: dict[str, Any]) -> None:
    async with await asyncinit.spawn(spawn_config) as container:
        with pytest.raises(asyncinit.InitError) as error:
            await container.exec(["/nonexistent"])
        assert error.value.path == "/nonexistent"
        with pytest.raises(asyncinit.ConfigError, match=r"process\.cwd"):
            await container.exec(["true"], cwd="relative")
        container.kill()


@pytest.mark.anyio
async def test_container_exec_after_exit_refused(spawn_config: dict[str, Any]) -> None:
    spawn_config["process"]["args"] = ["true"]
    async with await asyncinit.spawn(spawn_config) as container:
        await container.wait()
        with pytest.raises(asyncinit.ContainerStartError, match="exited"):
            await container.exec(["true"])


def test_exec_is_wired() -> None:
    """The engine harness switches exec cases on by this list."""
    from asyncinit._runc import WORKING

    assert "exec" in WORKING


@pytest.mark.parametrize("runtime", ["asyncinit"], indirect=True)
def test_joins_the_inits_cgroups(runtime: Runtime, running: str, tmp_path: Path) -> None:
    """The exec'd process lands in the init's cgroup in every hierarchy (v1 and v2), not
    in its caller's: the init is moved to a fresh cgroup of its own in each first."""
    from asyncinit.parent._exec import cgroup_directories

    init = json.loads(runtime("state", running)[1])["pid"]
    created = []
    try:
        for directory in cgroup_directories(init):
            own = os.path.join(directory, f"exec-test-{running}")
            os.mkdir(own)
            created.append(own)
            for name in ("cpuset.cpus", "cpuset.mems"):  # empty in a new v1 cpuset cgroup
                if os.path.exists(os.path.join(own, name)):
                    Path(own, name).write_text(Path(directory, name).read_text())
            Path(own, "cgroup.procs").write_text(str(init))
        pid_file = tmp_path / "exec.pid"
        assert runtime("exec", "-d", "--pid-file", str(pid_file), running, "sleep", "1000")[0] == 0
        pid = int(pid_file.read_text())
        try:
            assert (
                Path(f"/proc/{pid}/cgroup").read_text() == Path(f"/proc/{init}/cgroup").read_text()
            )
            assert f"exec-test-{running}" in Path(f"/proc/{pid}/cgroup").read_text()
        finally:
            os.kill(pid, 9)
    finally:
        runtime("delete", "--force", running)
        for own in created:
            for _ in range(100):
                try:
                    os.rmdir(own)
                    break
                except OSError:  # EBUSY until the killed processes are gone
                    time.sleep(0.05)
