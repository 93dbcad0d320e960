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
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import CHECKOUT
from tests.support.configs import base_config
from tests.support.runc import RUNC

pytestmark = pytest.mark.integration



class Runtime:
    """One runtime's command line with its own --root."""

    def __init__(self, name: str, root: Path) -> None:
        self.name = name
        self.root = root
        if name == "runc":
            assert RUNC is not None
            self.argv = [RUNC, "--root", str(root)]
        else:
            self.argv = [sys.executable, "-m", "asyncinit", "--root", str(root)]

    def __call__(self, *args: str) -> tuple[int, str, str]:
        """Exit code, stdout, runc's error message.  Files, not pipes: the container's
        init inherits create's stdio and keeps it (as runc's does)."""
        env = {**os.environ, "PYTHONPATH": str(CHECKOUT)}
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            code = subprocess.run(
                [*self.argv, *args],
                stdout=out,
                stderr=err,
                timeout=60,
                check=False,
                stdin=subprocess.DEVNULL,
                env=env,
            ).returncode
            out.seek(0)
            err.seek(0)
            return code, out.read(), error_message(err.read())

    def status(self, container_id: str) -> str:
        code, out, err = self("state", container_id)
        return json.loads(out)["status"] if code == 0 else err

    def wait_stopped(self, container_id: str) -> str:
        for _ in range(100):
            status = self.status(container_id)
            if status != "running":
                return status
            time.sleep(0.05)
        return "still running"


def error_message(stderr: str) -> str:
    for line in stderr.splitlines():
        if " level=error msg=" in line:
            return str(json.loads(line.split(" msg=", 1)[1])).strip()
    return ""


RUNTIMES = ["asyncinit", *(["runc"] if RUNC else [])]


@pytest.fixture(params=RUNTIMES)
def runtime(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Runtime]:
    rt = Runtime(request.param, tmp_path / f"root-{request.param}")
    yield rt
    # whatever a failed test left: killed and deleted
    for entry in rt.root.iterdir() if rt.root.exists() else ():
        rt("delete", "--force", entry.name)
    assert not rt.root.exists() or not any(rt.root.iterdir()), "state left behind"


@pytest.fixture
def write_config(bundle: Path) -> Callable[..., Path]:
    def write(*args: str, **changes: Any) -> Path:
        config = base_config(*args)
        config["root"]["path"] = "rootfs"
        config.update(changes)
        (bundle / "config.json").write_text(json.dumps(config))
        return bundle

    return write


def new_id() -> str:
    return f"lc-{uuid.uuid4().hex[:10]}"


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
