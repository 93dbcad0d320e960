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
from pathlib import Path

import pytest

from tests.support import CHECKOUT
from tests.support.configs import base_config
from tests.support.containers import needs_root
from tests.support.hooks import FAIL, PidNamespace, gone, held_config, hook, script, state_of

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
        servers = _children(parent.pid)  # the fork server
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


def _children(pid: int) -> list[int]:
    children: list[int] = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as f:
            children += [int(child) for child in f.read().split()]
    return children


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
        result.stderr == "asyncinit: error: invalid container id '../escape': "
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
