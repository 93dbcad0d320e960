"""runc's lifecycle commands, asyncinit against runc 1.1 on the same sequences.

create/state/start/state/kill/state/delete as the runtime-tools validation and
the engines drive them, run as separate processes (each runtime with its own
temporary ``--root``): the same exit codes, runc's error messages, the same
statuses, a pid file holding the init's pid (no newline), hooks at their points.
Where runc is missing, asyncinit runs alone against the expected outcomes.
Nothing is left: no state directory, no process, no mount (``host_unchanged``).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support import CHECKOUT, oci
from tests.support.configs import base_config
from tests.support.oci import Runtime, new_id

pytestmark = pytest.mark.integration

runtime = oci.runtime  # the fixtures: each runtime with its own --root, a bundle's config
write_config = oci.write_config


def test_create_start_kill_delete(
    runtime: Runtime, write_config: Callable[..., Path], tmp_path: Path
) -> None:
    bundle = write_config("sleep", "1000")
    cid = new_id()
    pid_file = tmp_path / "pid"
    assert runtime("create", "--bundle", str(bundle), "--pid-file", str(pid_file), cid)[0] == 0
    code, out, _ = runtime("state", cid)
    state = json.loads(out)
    assert (code, state["status"], state["id"]) == (0, "created", cid)
    assert pid_file.read_text() == str(state["pid"])  # no newline, as runc
    assert state["bundle"] == str(bundle)
    assert runtime("start", cid)[:1] == (0,)
    assert runtime.status(cid) == "running"
    assert runtime("start", cid) == (1, "", "cannot start an already running container")
    assert runtime("kill", cid, "KILL")[0] == 0
    assert runtime.wait_stopped(cid) == "stopped"
    assert json.loads(runtime("state", cid)[1])["pid"] == 0
    assert runtime("kill", cid) == (1, "", "container not running")
    assert runtime("start", cid) == (1, "", "cannot start a container that has stopped")
    assert runtime("delete", cid)[0] == 0
    assert runtime("state", cid) == (1, "", "container does not exist")


def test_missing_container(runtime: Runtime) -> None:
    for command in (["state"], ["start"], ["kill"], ["delete"], ["kill", "--all"]):
        assert runtime(*command, "nope") == (1, "", "container does not exist"), command
    assert runtime("delete", "--force", "nope") == (0, "", "")


def test_delete_refuses_running_and_force_kills(
    runtime: Runtime, write_config: Callable[..., Path]
) -> None:
    bundle = write_config("sleep", "1000")
    cid = new_id()
    assert runtime("create", "-b", str(bundle), cid)[0] == 0
    assert runtime("start", cid)[0] == 0
    code, _, err = runtime("delete", cid)
    assert (code, err) == (1, f"cannot delete container {cid} that is not stopped: running")
    assert runtime("delete", "--force", cid) == (0, "", "")
    assert runtime("state", cid)[2] == "container does not exist"


def test_delete_of_a_created_container_kills_it(
    runtime: Runtime, write_config: Callable[..., Path], tmp_path: Path
) -> None:
    bundle = write_config("sleep", "1000")
    cid = new_id()
    pid_file = tmp_path / "pid"
    assert runtime("create", "-b", str(bundle), "--pid-file", str(pid_file), cid)[0] == 0
    pid = int(pid_file.read_text())
    assert runtime("delete", cid) == (0, "", "")
    assert not Path(f"/proc/{pid}/cmdline").exists() or Path(
        f"/proc/{pid}/stat"
    ).read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X")


def test_failing_prestart_hook_leaves_no_container(
    runtime: Runtime, write_config: Callable[..., Path], tmp_path: Path
) -> None:
    hooks = {"prestart": [{"path": "/bin/false", "args": ["false"]}]}
    bundle = write_config("sleep", "1000", hooks=hooks)
    cid = new_id()
    code, _, err = runtime("create", "-b", str(bundle), cid)
    assert code == 1
    assert err
    assert runtime("state", cid)[2] == "container does not exist"
    assert not (runtime.root / cid).exists()


@pytest.mark.parametrize(
    ("command", "words"),
    [("/no/such/command", "no such file or directory"), ("/etc/passwd", "permission denied")],
)
def test_create_fails_for_a_program_that_cannot_run(
    runtime: Runtime, write_config: Callable[..., Path], command: str, words: str
) -> None:
    """runc's init looks ``args[0]`` up before ``created``: create fails with words that
    podman and docker turn into exit 127 and 126 (they never see the workload fail)."""
    bundle = write_config(command)
    cid = new_id()
    code, _, err = runtime("create", "-b", str(bundle), cid)
    assert code == 1
    assert words in err  # as it is: docker's client matches it case-sensitively
    assert command in err
    assert runtime("state", cid)[2] == "container does not exist"


def test_exec_fifo_lets_a_non_root_workload_start(
    runtime: Runtime, write_config: Callable[..., Path], tmp_path: Path
) -> None:
    """runc makes the exec fifo 0622 whatever the umask: the init opens it for writing
    with the workload's credentials (podman ``--user 65534``), so under a 022 umask a
    0600 fifo killed the init and ``start`` found it stopped."""
    config = base_config("sh", "-c", "id -u > /dev/null")
    config["process"]["user"] = {"uid": 65534, "gid": 65534}
    bundle = write_config("true", process=config["process"])
    cid = new_id()
    old_umask = os.umask(0o022)
    try:
        assert runtime("create", "-b", str(bundle), cid)[0] == 0
    finally:
        os.umask(old_umask)
    assert (runtime.root / cid / "exec.fifo").stat().st_mode & 0o777 == 0o622
    assert runtime("start", cid) == (0, "", "")
    assert runtime.wait_stopped(cid) == "stopped"
    assert runtime("delete", cid)[0] == 0


def test_hooks_run_at_their_points(
    runtime: Runtime, write_config: Callable[..., Path], tmp_path: Path
) -> None:
    log = tmp_path / "hooks.log"

    def hook(name: str) -> dict[str, Any]:
        script = f'read -r state; echo "{name} $(echo "$state" | grep -o status.:.[a-z]*)" >> {log}'
        return {"path": "/bin/sh", "args": ["sh", "-c", script]}

    hooks = {p: [hook(p)] for p in ("prestart", "createRuntime", "poststart", "poststop")}
    bundle = write_config("sleep", "1000", hooks=hooks)
    cid = new_id()
    assert runtime("create", "-b", str(bundle), cid)[0] == 0
    created = log.read_text().splitlines()
    assert runtime("start", cid)[0] == 0
    started = log.read_text().splitlines()[len(created) :]
    assert runtime("delete", "--force", cid)[0] == 0
    stopped = log.read_text().splitlines()[len(created) + len(started) :]
    if runtime.name == "runc":  # runc 1.1 runs poststart in create (fixed in runc 1.2)
        created, started = created[:2], created[2:] + started
    assert [line.split()[0] for line in created] == ["prestart", "createRuntime"]
    assert [line.split()[0] for line in started] == ["poststart"]
    assert [line.split()[0] for line in stopped] == ["poststop"]


def test_pid_file_and_state_pid_agree_with_proc(
    runtime: Runtime, write_config: Callable[..., Path], tmp_path: Path
) -> None:
    """The pid is the host pid of the container's PID 1, running the workload after start."""
    bundle = write_config("sleep", "1000")
    cid = new_id()
    pid_file = tmp_path / "pid"
    assert runtime("create", "-b", str(bundle), "--pid-file", str(pid_file), cid)[0] == 0
    pid = int(pid_file.read_text())
    assert not Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"sleep")  # waits for start
    assert runtime("start", cid)[0] == 0
    for _ in range(100):
        if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"sleep"):
            break
        time.sleep(0.05)
    assert Path(f"/proc/{pid}/cmdline").read_bytes() == b"sleep\x001000\x00"
    nspid = next(
        line
        for line in Path(f"/proc/{pid}/status").read_text().splitlines()
        if line.startswith("NSpid:")
    )
    assert nspid.split()[-1] == "1"  # PID 1 of its pid namespace
    assert runtime("delete", "--force", cid)[0] == 0


# --- --console-socket, run ----------------------------------------------------------------


def _read_pty(master: int) -> bytes:
    """Everything the workload writes until its last slave fd closes (EIO on Linux)."""
    output = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:
            return output
        if not chunk:
            return output
        output += chunk


def test_console_socket_gets_the_pty_master(
    runtime: Runtime, write_config: Callable[..., Path], tmp_path: Path
) -> None:
    """runc's message: ``/dev/ptmx`` with the master as SCM_RIGHTS; the slave is the
    workload's stdio and controlling terminal (``tty`` names it, /dev/tty opens)."""
    script = "tty; test -t 0 && test -t 1 && test -t 2 && echo -n x > /dev/tty && echo both"
    config = base_config("sh", "-c", script)
    config["process"]["terminal"] = True
    bundle = write_config("true", process=config["process"])
    path = tmp_path / "console.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(str(path))
        listener.listen(1)
        cid = new_id()
        assert runtime("create", "-b", str(bundle), "--console-socket", str(path), cid)[0] == 0
        connection, _ = listener.accept()
        with connection:
            body, fds, _, _ = socket.recv_fds(connection, 4096, 1)
    assert (body, len(fds)) == (b"/dev/ptmx", 1)
    master = fds[0]
    try:
        assert os.major(os.fstat(master).st_rdev) == 5  # the pty multiplexer (5:2)
        assert runtime("start", cid)[0] == 0
        output = _read_pty(master)
    finally:
        os.close(master)
    assert output.split() == [b"/dev/pts/0", b"xboth"]
    assert runtime.wait_stopped(cid) == "stopped"
    assert runtime("delete", cid)[0] == 0


def test_terminal_create_keeps_none_of_its_output_pipe(
    runtime: Runtime, write_config: Callable[..., Path], tmp_path: Path
) -> None:
    """containerd's shim reads ``create``'s output pipe to EOF before it calls ``start``:
    a terminal init must not hold create's stdio (runc gives it the null device), or
    ``ctr run --tty`` hangs with the init blocked on the exec fifo."""
    config = base_config("true")
    config["process"]["terminal"] = True
    bundle = write_config("true", process=config["process"])
    path = tmp_path / "console.sock"
    cid = new_id()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(str(path))
        listener.listen(1)
        listener.settimeout(30)
        output: bytes | None = None
        with subprocess.Popen(
            [*runtime.argv, "create", "-b", str(bundle), "--console-socket", str(path), cid],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(CHECKOUT)},
        ) as create:
            try:
                output, _ = create.communicate(timeout=15)  # EOF: nobody holds the pipe
            except subprocess.TimeoutExpired:
                create.kill()  # still running, or gone with the pipe held behind it
            finally:
                connection, _ = listener.accept()
                with connection:
                    _, fds, _, _ = socket.recv_fds(connection, 4096, 1)
                for fd in fds:
                    os.close(fd)
                runtime("delete", "--force", cid)
    assert output is not None, "create's output pipe saw no end of file: the init holds it"
    assert (create.returncode, output) == (0, b"")


def test_terminal_and_console_socket_must_go_together(
    runtime: Runtime, write_config: Callable[..., Path], tmp_path: Path
) -> None:
    config = base_config("true")
    config["process"]["terminal"] = True
    bundle = write_config("true", process=config["process"])
    cid = new_id()
    assert runtime("create", "-b", str(bundle), cid) == (
        1, "", "cannot allocate tty if runc will detach without setting console socket"
    )  # fmt: skip
    write_config("true")
    code, _, err = runtime("create", "-b", str(bundle), "--console-socket", "/nonexistent", cid)
    assert (code, err) == (1, "cannot use console socket if runc will not detach or allocate tty")
    assert runtime("state", cid)[2] == "container does not exist"


def test_run_passes_the_exit_status_and_deletes(
    runtime: Runtime, write_config: Callable[..., Path]
) -> None:
    bundle = write_config("sh", "-c", "echo out; exit 3")
    cid = new_id()
    assert runtime("run", "-b", str(bundle), cid) == (3, "out\n", "")
    assert runtime("state", cid)[2] == "container does not exist"


def test_run_keep_leaves_it_stopped(runtime: Runtime, write_config: Callable[..., Path]) -> None:
    bundle = write_config("true")
    cid = new_id()
    assert runtime("run", "--keep", "-b", str(bundle), cid)[0] == 0
    assert runtime.status(cid) == "stopped"
    assert runtime("delete", cid)[0] == 0


def test_run_detach_with_pid_file(
    runtime: Runtime, write_config: Callable[..., Path], tmp_path: Path
) -> None:
    bundle = write_config("sleep", "1000")
    cid = new_id()
    pid_file = tmp_path / "pid"
    assert runtime("run", "-d", "--pid-file", str(pid_file), "-b", str(bundle), cid) == (0, "", "")
    state = json.loads(runtime("state", cid)[1])
    assert (state["status"], str(state["pid"])) == ("running", pid_file.read_text())
    assert Path(f"/proc/{state['pid']}/cmdline").read_bytes() == b"sleep\x001000\x00"
    assert runtime("delete", "--force", cid)[0] == 0


def test_run_detach_with_a_terminal_needs_the_console_socket(
    runtime: Runtime, write_config: Callable[..., Path], tmp_path: Path
) -> None:
    config = base_config("sh", "-c", "tty")
    config["process"]["terminal"] = True
    bundle = write_config("true", process=config["process"])
    cid = new_id()
    assert runtime("run", "-d", "-b", str(bundle), cid) == (
        1, "", "cannot allocate tty if runc will detach without setting console socket"
    )  # fmt: skip
    path = tmp_path / "console.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(str(path))
        listener.listen(1)
        assert runtime("run", "-d", "--console-socket", str(path), "-b", str(bundle), cid)[0] == 0
        connection, _ = listener.accept()
        with connection:
            _, fds, _, _ = socket.recv_fds(connection, 4096, 1)
    try:
        assert _read_pty(fds[0]).split() == [b"/dev/pts/0"]
    finally:
        os.close(fds[0])
    assert runtime.wait_stopped(cid) == "stopped"
    assert runtime("delete", cid)[0] == 0


def test_run_reports_a_signal_death_as_128_plus_the_signal(
    runtime: Runtime, write_config: Callable[..., Path], tmp_path: Path
) -> None:
    bundle = write_config("sleep", "1000")
    cid = new_id()
    env = {**os.environ, "PYTHONPATH": str(CHECKOUT)}
    with tempfile.TemporaryFile() as out:
        foreground = subprocess.Popen(
            [*runtime.argv, "run", "-b", str(bundle), cid],
            stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=env,
        )  # fmt: skip
        try:
            for _ in range(200):
                if runtime.status(cid) == "running":
                    break
                time.sleep(0.05)
            assert runtime("kill", cid, "KILL")[0] == 0
            assert foreground.wait(timeout=30) == 128 + 9
        finally:
            foreground.kill()
            foreground.wait()
    assert runtime("state", cid)[2] == "container does not exist"


def test_kill_all_reaches_every_process(
    runtime: Runtime, write_config: Callable[..., Path]
) -> None:
    """PID 1 (sh) ignores SIGTERM; ``--all`` also reaches its children, so it ends."""
    bundle = write_config("sh", "-c", "sleep 1000 & sleep 1000 & wait")
    cid = new_id()
    assert runtime("create", "-b", str(bundle), cid)[0] == 0
    assert runtime("start", cid)[0] == 0
    assert runtime("kill", cid, "TERM")[0] == 0
    time.sleep(0.3)
    assert runtime.status(cid) == "running"
    assert runtime("kill", "--all", cid, "TERM") == (0, "", "")
    assert runtime.wait_stopped(cid) == "stopped"
    assert runtime("kill", "--all", cid, "KILL") == (0, "", "")  # stopped: no error (runc 1.1)
    assert runtime("kill", cid, "KILL") == (1, "", "container not running")
    assert runtime("delete", cid)[0] == 0
