"""Integration: the asyncinit command line, run as a user would, in a subprocess."""

from __future__ import annotations

import fcntl
import json
import os
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

from .conftest import base_config, needs_root

pytestmark = [pytest.mark.integration, needs_root]

ASYNCINIT = [sys.executable, "-m", "asyncinit"]
REPO = Path(__file__).parent.parent


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


@pytest.mark.skipif(shutil.which("busybox") is None, reason="needs busybox-static")
def test_demo_prints_pid_hostname_and_mounts() -> None:
    result = subprocess.run(
        [*ASYNCINIT, "demo"], capture_output=True, text=True, timeout=60, check=False, cwd=REPO
    )
    assert result.returncode == 0, result.stderr
    assert "PID 1 in the container, hostname asyncinit-demo" in result.stdout
    assert " / " in result.stdout
    assert " /proc " in result.stdout


def test_killed_parent_takes_its_containers_down(bundle: Path, tmp_path: Path) -> None:
    """SIGKILL the calling Python process: the fork server sees EOF and kills the container."""
    config = base_config("sleep", "600")
    (bundle / "config.json").write_text(json.dumps(config))
    pid_file = tmp_path / "pid"
    script = textwrap.dedent(f"""
        import anyio, asyncinit
        async def main():
            container = await asyncinit.spawn({str(bundle / "config.json")!r})
            open({str(pid_file)!r}, "w").write(str(container.pid))
            await anyio.sleep(600)
        anyio.run(main)
    """)
    parent = subprocess.Popen([sys.executable, "-c", script], cwd=REPO)
    deadline = time.monotonic() + 30
    while not pid_file.exists() or not pid_file.read_text():
        assert parent.poll() is None, "the parent died before starting the container"
        assert time.monotonic() < deadline
        time.sleep(0.02)
    container_pid = int(pid_file.read_text())
    assert Path(f"/proc/{container_pid}").exists()
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 10
    while Path(f"/proc/{container_pid}").exists():
        assert time.monotonic() < deadline, "the container outlived its parent"
        time.sleep(0.02)


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
    output = b""
    deadline = time.monotonic() + 30
    while b"40 120" not in output:
        assert time.monotonic() < deadline, output
        output += os.read(master, 4096)
    os.write(master, b"hello\r")
    while b"got:hello" not in output:
        assert time.monotonic() < deadline, output
        output += os.read(master, 4096)
    assert process.wait(timeout=30) == 3
    os.close(master)
    assert b"/dev/pts/0" in output


def test_run_init_flag_supervises(bundle: Path) -> None:
    config = base_config("sh", "-c", "(sleep 0.05 &); sleep 0.3; cat /proc/1/comm; exit 4")
    (bundle / "config.json").write_text(json.dumps(config))
    result = asyncinit("run", "--init", "-b", str(bundle), "init-test", cwd=REPO)
    assert result.returncode == 4, result.stderr
    assert result.stdout.strip() != "sh"
