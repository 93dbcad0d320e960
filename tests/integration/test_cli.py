"""Integration: the asyncinit command line, run as a user would, in a subprocess."""

from __future__ import annotations

import fcntl
import json
import os
import select
import shutil
import signal
import struct
import subprocess
import sys
import termios
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import CHECKOUT
from tests.support.configs import base_config
from tests.support.containers import needs_root
from tests.support.hooks import (
    FAIL,
    PidNamespace,
    gone,
    held_config,
    hook,
    script,
    state_of,
    wait_for,
)
from tests.support.host import process_stats, thread_children

pytestmark = [pytest.mark.integration, needs_root]

ASYNCINIT = [sys.executable, "-m", "asyncinit"]
REPO = CHECKOUT


def asyncinit(*args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*ASYNCINIT, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )


def test_spec_writes_runc_default(tmp_path: Path) -> None:
    result = asyncinit("spec", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["process"]["args"] == ["sh"]
    assert config["root"] == {"path": "rootfs", "readonly": True}
    again = asyncinit("spec", cwd=tmp_path)
    assert again.returncode == 1
    assert "already exists" in again.stderr


def test_run_bundle_exit_status(bundle: Path) -> None:
    config = base_config("sh", "-c", "echo hi from $$; exit 7")
    (bundle / "config.json").write_text(json.dumps(config))
    result = asyncinit("run", "-b", str(bundle), "cli-test", cwd=REPO)
    assert result.stdout == "hi from 1\n"
    assert result.returncode == 7, result.stderr


def test_run_with_rootfs_dot_from_the_bundle_dir(bundle: Path) -> None:
    config = base_config("sh", "-c", "test -e /config.json && echo found")
    config["root"]["path"] = "."
    rootfs = bundle / "rootfs"
    (rootfs / "config.json").write_text(json.dumps(config))
    result = asyncinit("run", "dot", cwd=rootfs)
    assert (result.returncode, result.stdout) == (0, "found\n"), result.stderr


def test_run_error_is_one_line_and_debug_shows_traceback(bundle: Path) -> None:
    config = base_config("/missing/program")
    (bundle / "config.json").write_text(json.dumps(config))
    result = asyncinit("run", "-b", str(bundle), "bad", cwd=REPO)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("asyncinit: error:")
    assert "execve" in lines[0]
    assert "/missing/program" in lines[0]
    assert "ENOENT" in lines[0]
    debug = asyncinit("--debug", "run", "-b", str(bundle), "bad", cwd=REPO)
    assert "Traceback" in debug.stderr


def test_run_bad_config_names_the_field(bundle: Path) -> None:
    config = base_config()
    config["linux"]["uidMappings"] = [{"hostID": 0, "size": 1}]
    (bundle / "config.json").write_text(json.dumps(config))
    result = asyncinit("run", "-b", str(bundle), "bad", cwd=REPO)
    assert result.returncode == 1
    assert "linux.uidMappings[0].containerID: required field missing" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            ("process", "user", {"uid": 4294967295, "gid": 0}),
            "process.user.uid: must be between 0 and 2147483647, got 4294967295",
        ),
        (
            ("process", "user", {"uid": 1000, "gid": 4294967295}),
            "process.user.gid: must be between 0 and 2147483647, got 4294967295",
        ),
        (("root", "path", "root\0fs"), "root.path: contains a NUL byte"),
        (
            ("hooks", "prestart", [{"path": "/bin/tr\0ue"}]),
            "hooks.prestart[0].path: contains a NUL byte",
        ),
        (("x", "y", "deep"), "config.json: nested too deeply (more than 64 levels)"),
    ],
    ids=["uid-minus-one", "gid-minus-one", "nul-root", "nul-hook", "deep"],
)
def test_run_hostile_config_is_one_line(
    bundle: Path, edit: tuple[str, str, object], expected: str
) -> None:
    """Issue 12 items 1, 9, 10: refused with the field named, one line, nothing started."""
    config = base_config("id")
    section, key, value = edit
    config.setdefault(section, {})[key] = value
    text = json.dumps(config)
    if value == "deep":  # 10,000 levels: json.dumps itself could not write them
        text = text.replace('"deep"', "[" * 10_000 + "]" * 10_000)
    (bundle / "config.json").write_text(text)
    result = asyncinit("run", "--no-daemon", "-b", str(bundle), "hostile", cwd=REPO)
    assert (result.returncode, result.stdout) == (1, ""), result.stderr
    assert result.stderr.splitlines() == [f"asyncinit: error: {expected}"]


@pytest.mark.skipif(shutil.which("busybox") is None, reason="needs busybox-static")
def test_demo_prints_pid_hostname_and_mounts() -> None:
    result = subprocess.run(
        [*ASYNCINIT, "demo"], capture_output=True, text=True, timeout=60, check=False, cwd=REPO
    )
    assert result.returncode == 0, result.stderr
    assert "PID 1 in the container, hostname asyncinit-demo" in result.stdout
    assert " / " in result.stdout
    assert " /proc " in result.stdout


@pytest.mark.parametrize("stage", ["premount", "python-createRuntime", "running"])
def test_killed_parent_takes_its_containers_down(bundle: Path, tmp_path: Path, stage: str) -> None:
    """SIGKILL the calling Python process at each stage: the init and its children exit."""
    log = tmp_path / "log"
    config = held_config(base_config, bundle, log, tmp_path, stage)
    (bundle / "config.json").write_text(json.dumps(config))
    child = textwrap.dedent(f"""
        import anyio, asyncinit
        from pathlib import Path
        log = Path({str(log)!r})
        async def hold(container):
            (log / "python-createRuntime.state").write_text('{{"pid": %d}}' % container.pid)
            (log / "python-createRuntime.ready").write_text("ready")
            await anyio.sleep(600)
        async def main():
            hooks = asyncinit.PythonHooks(
                create_runtime=[hold] if {stage!r} == "python-createRuntime" else []
            )
            container = await asyncinit.spawn({str(bundle / "config.json")!r}, hooks=hooks)
            (log / "running.state").write_text('{{"pid": %d}}' % container.pid)
            (log / "running.ready").write_text("ready")
            await anyio.sleep(600)
        anyio.run(main)
    """)
    parent = subprocess.Popen([sys.executable, "-c", child], cwd=REPO)
    try:
        deadline = time.monotonic() + 30
        while not (log / f"{stage}.ready").exists():
            assert parent.poll() is None, "the parent died before the container got there"
            assert time.monotonic() < deadline
            time.sleep(0.01)
        pid = state_of(log, stage)["pid"]
        namespace = PidNamespace(pid)
        servers = thread_children(parent.pid)  # the fork server
    finally:
        parent.kill()
        parent.wait()
    try:
        assert gone(pid, timeout=10), "the container outlived its parent"
        # The fork server destroys the cgroup (host_unchanged checks), then exits.
        assert all(gone(server, timeout=10) for server in servers), "the fork server stayed"
        deadline = time.monotonic() + 10
        while namespace.processes():
            assert time.monotonic() < deadline, "processes of the container outlived it"
            time.sleep(0.01)
    finally:
        namespace.close()


def test_run_prints_poststart_and_poststop_warnings(bundle: Path, tmp_path: Path) -> None:
    bad = script(tmp_path / "bad", FAIL)
    config = base_config("sh", "-c", "echo workload ran")
    config["hooks"] = {"poststart": [hook(bad, "poststart")], "poststop": [hook(bad, "poststop")]}
    (bundle / "config.json").write_text(json.dumps(config))
    result = asyncinit("run", "-b", str(bundle), "warned", cwd=REPO)
    assert result.returncode == 0, result.stderr  # warnings do not fail the run
    assert result.stdout == "workload ran\n"
    assert result.stderr.splitlines() == [
        f"asyncinit: warning: poststart hook 0 ({bad}) exited with status 3: boom from poststart",
        f"asyncinit: warning: poststop hook 0 ({bad}) exited with status 3: boom from poststop",
    ]


def test_run_failing_hook_is_one_error_line(bundle: Path, tmp_path: Path) -> None:
    bad = script(tmp_path / "bad", FAIL)
    config = base_config("sh", "-c", "echo workload ran")
    config["hooks"] = {"createRuntime": [hook(bad, "createRuntime")]}
    (bundle / "config.json").write_text(json.dumps(config))
    result = asyncinit("run", "-b", str(bundle), "failed", cwd=REPO)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr.splitlines() == [
        f"asyncinit: error: createRuntime hook 0 ({bad}) exited with status 3: "
        "boom from createRuntime"
    ]


@pytest.mark.parametrize("stage", ["premount", "createRuntime", "startContainer"])
def test_ctrl_c_during_the_start_cleans_up(bundle: Path, tmp_path: Path, stage: str) -> None:
    log = tmp_path / "log"
    config = held_config(base_config, bundle, log, tmp_path, stage)
    (bundle / "config.json").write_text(json.dumps(config))
    process = subprocess.Popen(
        [*ASYNCINIT, "run", "-b", str(bundle), "held"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not (log / f"{stage}.ready").exists():
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.01)
        pid = state_of(log, stage)["pid"]
        namespace = PidNamespace(pid)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, err
    assert gone(pid, timeout=0)
    try:
        assert namespace.processes() == []
    finally:
        namespace.close()
    if stage == "createRuntime":  # the parent-side hook and its child were killed
        assert all(gone(int(p)) for p in (log / f"{stage}.pids").read_text().split())
    assert not (log / "workload-ran").exists()
    assert state_of(log, "poststop")["id"] == "held"  # the cleanup ran


def read_until(fd: int, wanted: bytes, deadline: float) -> bytes:
    """Read ``fd`` until ``wanted`` shows up; fails (never hangs) at ``deadline``."""
    output = b""
    while wanted not in output:
        left = deadline - time.monotonic()
        assert left > 0, output
        if select.select([fd], [], [], left)[0]:
            output += os.read(fd, 4096)
    return output


def test_run_attaches_the_terminal(bundle: Path) -> None:
    """`asyncinit run` of a terminal config, driven from a pty like a user's terminal."""
    config = base_config("sh", "-c", "tty; stty size; read line; echo got:$line; exit 3")
    config["process"]["terminal"] = True
    (bundle / "config.json").write_text(json.dumps(config))
    master, slave = os.openpty()
    fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    process = subprocess.Popen(
        [*ASYNCINIT, "run", "-b", str(bundle), "tty-test"],
        cwd=REPO,
        stdin=slave,
        stdout=slave,
        stderr=slave,
        start_new_session=True,
    )
    os.close(slave)
    deadline = time.monotonic() + 30
    output = read_until(master, b"40 120", deadline)
    os.write(master, b"hello\r")
    output += read_until(master, b"got:hello", deadline)
    assert process.wait(timeout=30) == 3
    os.close(master)
    assert b"/dev/pts/0" in output


def test_run_init_flag_supervises(bundle: Path) -> None:
    config = base_config("sh", "-c", "(sleep 0.05 &); sleep 0.3; cat /proc/1/comm; exit 4")
    (bundle / "config.json").write_text(json.dumps(config))
    result = asyncinit("run", "--init", "-b", str(bundle), "init-test", cwd=REPO)
    assert result.returncode == 4, result.stderr
    assert result.stdout.strip() != "sh"


def test_run_refuses_an_invalid_container_id(bundle: Path) -> None:
    (bundle / "config.json").write_text(json.dumps(base_config()))
    result = asyncinit("run", "-b", str(bundle), "../escape", cwd=REPO)
    assert result.returncode == 1
    assert (
        result.stderr == "asyncinit: error: invalid container id \"../escape\": "
        "letters, digits, _ + - . only\n"
    )


def test_run_enforces_device_rules_without_a_warning(bundle: Path) -> None:
    """linux.resources.devices is enforced by the container's cgroup now: no ConfigWarning."""
    config = base_config("true")
    config["linux"]["resources"] = {"devices": [{"allow": False, "access": "rwm"}]}
    (bundle / "config.json").write_text(json.dumps(config))
    result = asyncinit("run", "-b", str(bundle), "warned", cwd=REPO)
    assert result.returncode == 0
    assert result.stderr == ""


def test_run_forwards_sigterm_to_the_container(bundle: Path) -> None:
    """As `runc run`: a signal to the CLI reaches PID 1, and its exit status comes back."""
    config = base_config(
        "sh", "-c", "trap 'exit 42' TERM; echo ready; while :; do sleep 0.05; done"
    )
    (bundle / "config.json").write_text(json.dumps(config))
    process = subprocess.Popen(
        [*ASYNCINIT, "run", "-b", str(bundle), "forward"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    assert process.stdout.readline() == "ready\n"
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=30)
    assert process.returncode == 42


def session_processes(sid: int) -> list[int]:
    """Live processes of session ``sid``: a CLI started in a session of its own and
    everything it left behind (its fork server, a container without a terminal)."""
    return [pid for pid, fields in process_stats() if int(fields[3]) == sid and fields[0] != "Z"]


def assert_nothing_left(sid: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while left := session_processes(sid):
        assert time.monotonic() < deadline, f"left behind: {left}"
        time.sleep(0.01)


def fork_server_of(pid: int) -> int:
    for child, fields in process_stats():
        if int(fields[1]) == pid:
            try:
                with open(f"/proc/{child}/cmdline", "rb") as f:
                    cmdline = f.read()
            except OSError:
                continue
            if b"asyncinit.forkserver._server" in cmdline:
                return child
    raise AssertionError(f"{pid} has no fork server")


@pytest.mark.parametrize("stage", ["premount", "running"])
def test_a_killed_fork_server_is_one_error_line(bundle: Path, tmp_path: Path, stage: str) -> None:
    """SIGKILL the in-process CLI's fork server mid-start or mid-run (issue 12, item 11).

    One line, exit 1, the poststop hook ran, nothing left running.
    """
    log = tmp_path / "log"
    config = held_config(base_config, bundle, log, tmp_path, stage)
    config["process"]["args"] = ["sh", "-c", "echo ready; exec sleep 600"]
    (bundle / "config.json").write_text(json.dumps(config))
    process = subprocess.Popen(
        [*ASYNCINIT, "run", "--no-daemon", "-b", str(bundle), "lost"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        if stage == "running":
            assert process.stdout is not None
            assert process.stdout.readline() == "ready\n"
        else:
            wait_for(log / f"{stage}.ready", timeout=30)
        os.kill(fork_server_of(process.pid), signal.SIGKILL)
        _, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert (process.returncode, err) == (
        1,
        "asyncinit: error: the fork server died and took the container with it; "
        "its exit status is lost\n",
    )
    assert state_of(log, "poststop")["id"] == "lost"
    assert_nothing_left(process.pid)


def limited_run(
    bundle: Path, wrapper: list[str], *options: str
) -> subprocess.CompletedProcess[str]:
    """`asyncinit run` of a config printing ok, started under ``wrapper`` (a limit)."""
    config = base_config("echo", "ok")
    config["process"]["rlimits"] = []  # no hard limit to raise: we lack CAP_SYS_RESOURCE
    (bundle / "config.json").write_text(json.dumps(config))
    process = subprocess.Popen(
        [*wrapper, *ASYNCINIT, "run", "--no-daemon", *options, "-b", str(bundle), "limited"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    out, err = process.communicate(timeout=60)
    assert_nothing_left(process.pid)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def assert_ran_or_one_line(result: subprocess.CompletedProcess[str], errno_name: str) -> None:
    """Either the container ran, or one line names the operation and the errno; exit 1
    as `runc run` on a failed start."""
    if result.returncode == 0:
        assert (result.stdout, result.stderr) == ("ok\n", "")
        return
    assert result.returncode == 1, result.stderr
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith("asyncinit: error: ["), result.stderr
    assert result.stderr.endswith(f"errno {errno_name})\n"), result.stderr
    assert ": " in result.stderr.split("] ", 1)[1], "no operation named"


def test_out_of_fds_anywhere_on_the_start_is_one_line(bundle: Path) -> None:
    """RLIMIT_NOFILE from the lowest an interpreter survives up (issue 12, item 12).

    Each limit runs out at another step (the fork server's start, its imports,
    the event loop, the launch's sockets, the server's pidfd...); from 14 on the
    container runs (it used to need 257: PID 1 moved its fds above 256).
    """
    results = {n: limited_run(bundle, ["prlimit", f"--nofile={n}:{n}"]) for n in range(5, 17)}
    for result in results.values():
        assert_ran_or_one_line(result, "EMFILE")
    assert results[16].returncode == 0, results[16].stderr


@pytest.fixture
def pids_cgroup(tmp_path: Path) -> Iterator[Path]:
    """A pids cgroup (v1 here; v2 where that is all there is), removed afterwards."""
    root = Path("/sys/fs/cgroup/pids")
    if not (root / "cgroup.procs").exists():
        root = Path("/sys/fs/cgroup")
        if "pids" not in (root / "cgroup.subtree_control").read_text().split():
            pytest.skip("no pids controller to limit with")
    group = root / f"asyncinit-test-{os.getpid()}-{tmp_path.name}"
    group.mkdir()
    try:
        yield group
    finally:
        group.rmdir()


@pytest.mark.parametrize("init", [False, True])
def test_out_of_processes_anywhere_on_the_start_is_one_line(
    bundle: Path, pids_cgroup: Path, init: bool
) -> None:
    """A pids limit of 1, 2, 3... (issue 12, item 12): the fork server's start, its fork
    of PID 1, the init's steps thread, the supervisor's posix_spawn (on v1 the fork
    server's child joins the container's cgroups itself: no worker thread in the parent;
    the pids counted are the caller's cgroup's until then)."""
    enter = ["sh", "-c", f'echo $$ > {pids_cgroup}/cgroup.procs && exec "$@"', "sh"]
    for limit in range(1, 7):
        (pids_cgroup / "pids.max").write_text(str(limit))
        result = limited_run(bundle, enter, *(["--init"] if init else []))
        assert_ran_or_one_line(result, "EAGAIN")
        assert (result.returncode == 0) == (limit >= 4 + init), (limit, result.stderr)


def started_cli(bundle: Path, container_id: str) -> subprocess.Popen[str]:
    """`asyncinit run` in a session of its own, returned once asyncinit's code runs.

    ``-X importtime`` reports each import as it completes: asyncinit.cli's line comes
    just before main() is called.  What comes before it is the interpreter's own start
    (site, runpy, the search for the package), where a SIGINT is Python's
    KeyboardInterrupt before any code of ours could catch it.
    """
    run = ["run", "--no-daemon", "-b", str(bundle), container_id]
    process = subprocess.Popen(
        [sys.executable, "-X", "importtime", "-m", "asyncinit", *run],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert process.stderr is not None
    while not process.stderr.readline().rstrip().endswith("| asyncinit.cli"):
        assert process.poll() is None, process.communicate()
    return process


@pytest.mark.parametrize(
    ("signum", "moments"),
    [(signal.SIGINT, 20), (signal.SIGTERM, 6), (signal.SIGHUP, 6)],
    ids=["SIGINT", "SIGTERM", "SIGHUP"],
)
def test_a_signal_at_any_moment_of_the_run(
    bundle: Path, signum: signal.Signals, moments: int
) -> None:
    """A terminal's Ctrl-C (or a kill) to the CLI's whole process group, at moments spread
    over 0-150 ms from asyncinit's first line: imports, parsing, the fork server's start,
    the config, the start, the run (issue 12, item 13).  Never a traceback nor any other
    output, nothing left behind.

    The exit: 128 + N (SIGINT: 130), killed by the signal (its default action: SIGTERM
    and SIGHUP before the event loop catches them), or the container's 0 (it arrived
    once the container ran: forwarded, and PID 1 ignores it).
    """
    (bundle / "config.json").write_text(json.dumps(base_config("sleep", "0.2")))
    for moment in range(moments):
        process = started_cli(bundle, "interrupted")
        time.sleep(0.15 * moment / moments)
        os.killpg(process.pid, signum)
        out, err = process.communicate(timeout=30)
        err = "".join(line for line in err.splitlines(True) if not line.startswith("import time:"))
        assert (out, err) == ("", ""), (moment, process.returncode)
        assert process.returncode in (0, 128 + signum, -signum), (moment, process.returncode)
        assert_nothing_left(process.pid)


@pytest.mark.parametrize("closed", ["<&-", "<&- >&- 2>&-", "api"])
def test_closed_stdio_is_the_null_device(bundle: Path, tmp_path: Path, closed: str) -> None:
    """`asyncinit run` (or a spawn() caller) with fd 0, or 0-2, closed: the container gets
    /dev/null there, as runc's (Go's runtime reopens them), never an fd asyncinit opened
    meanwhile: the fork server's control socket landed on 0 and became the container's
    stdin, a way to ask the fork server for anything."""
    log = tmp_path / "log"
    log.mkdir()
    # Expansions before the redirection: PID 1's own fds, not the loop's.
    fds = " ".join(f'"$(readlink /proc/$$/fd/{fd})"' for fd in range(3))
    config = base_config("sh", "-c", f"echo {fds} > /log/fds")
    config["mounts"].append(
        {"destination": "/log", "type": "bind", "source": str(log), "options": ["rbind"]}
    )
    (bundle / "config.json").write_text(json.dumps(config))
    if closed == "api":
        code = textwrap.dedent("""
            import os, sys, anyio, asyncinit
            async def main():
                os.close(0)  # after the event loop took its fds: the next is spawn()'s
                async with await asyncinit.spawn(sys.argv[1]) as container:
                    return await container.wait()
            sys.exit(anyio.run(main))
        """)
        command = [sys.executable, "-c", code, str(bundle / "config.json")]
    else:
        run = [*ASYNCINIT, "run", "--no-daemon", "-b", str(bundle), "closed"]
        command = ["sh", "-c", f'exec "$@" {closed}', "sh", *run]
    result = subprocess.run(
        command, cwd=REPO, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    targets = (log / "fds").read_text().split()
    assert targets[0] == "/dev/null"
    if closed == "<&- >&- 2>&-":
        assert targets == ["/dev/null"] * 3


@pytest.mark.parametrize(("fd", "why"), [("99", "Bad file descriptor"), ("1", "not a socket")])
def test_init_with_a_bad_sync_fd_is_one_line(tmp_path: Path, fd: str, why: str) -> None:
    result = asyncinit("init", "--sync-fd", fd, cwd=tmp_path)
    assert (result.returncode, result.stderr) == (1, f"asyncinit: error: --sync-fd {fd}: {why}\n")


def test_a_daemon_out_of_fds_is_one_line(tmp_path: Path) -> None:
    """`asyncinit daemon` whose fork server cannot start: one line, its socket removed."""
    socket_path = tmp_path / "daemon.sock"
    result = subprocess.run(
        ["prlimit", "--nofile=6:6", *ASYNCINIT, "daemon", "--socket", str(socket_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    # where it runs out: the sealed interpreter (fsopen...) or the server's own start
    assert result.stderr.startswith("asyncinit: error: [launch] "), result.stderr
    assert result.stderr.endswith("errno EMFILE)\n"), result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert not socket_path.exists()


def test_a_fork_server_out_of_fds_says_so(bundle: Path) -> None:
    """The server's fd table cannot take a request's fds (the kernel drops them, its
    status socket among them): spawn() raises the server's report, not a guess."""
    (bundle / "config.json").write_text(json.dumps(base_config("true")))
    code = textwrap.dedent("""
        import os, resource, sys, anyio, asyncinit
        from asyncinit.parent import _launcher

        async def main():
            async with await asyncinit.spawn(sys.argv[1]) as container:  # it serves
                await container.wait()
            server = _launcher.fork_server()
            used = {int(fd) for fd in os.listdir(f"/proc/{server.process.pid}/fd")}
            free = [fd for fd in range(max(used) + 3) if fd not in used][:2]
            room = free[-1] + 1  # two fds fit, a request brings five
            resource.prlimit(server.process.pid, resource.RLIMIT_NOFILE, (room, room))
            try:
                await asyncinit.spawn(sys.argv[1])
            except asyncinit.InitError as exc:
                print(exc, exc.errno, exc.operation, server.alive())

        anyio.run(main)
    """)
    result = subprocess.run(
        [sys.executable, "-c", code, str(bundle / "config.json")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == (
        "[launch] receive the launch request: Too many open files (errno EMFILE) "
        "24 receive the launch request True\n"
    )
