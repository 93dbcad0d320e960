"""asyncinit.oci's state directory and output formats: files, locks, live status, tables.

Pure (temporary directories, this process and its children): no container.
"""

from __future__ import annotations

import fcntl
import io
import json
import os
import pwd
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from asyncinit.oci import main
from asyncinit.oci._errors import (
    ContainerExists,
    ContainerNotFound,
    OciUsageError,
    StateFileError,
)
from asyncinit.oci._format import list_output, ps_filter, ps_json, state_json, tabulate
from asyncinit.oci._state import State, check_id, live_status, process_start_time, rfc3339_nano
from asyncinit.oci._store import StateDir
from tests.support import CHECKOUT


def new_state(container_id: str = "c1", **kwargs: object) -> State:
    return State(container_id, bundle="/b", rootfs="/b/rootfs", **kwargs)  # type: ignore[arg-type]


def running_as_me(state: State) -> State:
    state.status, state.pid = "running", os.getpid()
    state.pid_start = process_start_time(os.getpid()) or 0
    return state


@pytest.fixture
def store(tmp_path: Path) -> StateDir:
    return StateDir(str(tmp_path / "root"))


def test_layout_and_modes(store: StateDir) -> None:
    with store.create(new_state()):
        pass
    assert stat.S_IMODE(os.stat(store.root).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(store.path("c1")).st_mode) == 0o711
    assert stat.S_IMODE(os.stat(store.path("c1", "state.json")).st_mode) == 0o600
    assert os.listdir(store.path("c1")) == ["state.json"]  # no temporary file left


def test_round_trip(store: StateDir) -> None:
    state = running_as_me(new_state(annotations={"a": "b"}, extra={"cgroup": "/x"}))
    with store.create(state):
        pass
    loaded = store.load("c1")
    assert loaded.record() == state.record()
    assert live_status(loaded) == "running"


def test_create_twice_is_refused(store: StateDir) -> None:
    with store.create(new_state()):
        pass
    with pytest.raises(ContainerExists, match="container with id exists: c1"):
        store.create(new_state())


@pytest.mark.parametrize("bad", ["", ".", "..", "a/b", "a b", "é", "x" * 256, "a\n"])
def test_invalid_ids(bad: str) -> None:
    with pytest.raises(OciUsageError, match="invalid container ID format"):
        check_id(bad)


def test_valid_ids() -> None:
    for good in ("abc", "A_b-c.d+e", "0" * 64, "x" * 255):
        assert check_id(good) == good


def test_missing_container(store: StateDir) -> None:
    with pytest.raises(ContainerNotFound, match="container does not exist"):
        store.load("nope")
    with pytest.raises(ContainerNotFound):
        store.lock("nope")


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("{bad", "corrupt state file"),
        ("[]", "not a JSON object"),
        ('{"id": "c1"}', "status: expected str"),
        ("", "corrupt state file"),
    ],
)
def test_corrupt_state_file_names_it(store: StateDir, content: str, problem: str) -> None:
    with store.create(new_state()):
        pass
    path = store.path("c1", "state.json")
    Path(path).write_text(content)
    with pytest.raises(StateFileError) as info:
        store.load("c1")
    assert str(info.value).startswith(f"{path}: ")
    assert problem in str(info.value)


def test_wrong_field_type_and_id_are_named(store: StateDir) -> None:
    with store.create(new_state()):
        pass
    path = Path(store.path("c1", "state.json"))
    record = json.loads(path.read_text())
    path.write_text(json.dumps({**record, "pid": "12"}))
    with pytest.raises(StateFileError, match="pid: expected int"):
        store.load("c1")
    path.write_text(json.dumps({**record, "id": "other"}))
    with pytest.raises(StateFileError, match="state file of 'other', not 'c1'"):
        store.load("c1")
    path.unlink()
    with pytest.raises(StateFileError, match="state file missing"):
        store.load("c1")


def test_container_lock_is_exclusive(store: StateDir) -> None:
    with store.create(new_state()):
        other = os.open(store.path("c1"), os.O_RDONLY | os.O_DIRECTORY)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(other)
    with store.lock("c1", exclusive=False), store.lock("c1", exclusive=False):
        pass  # readers share


def test_a_waiter_sees_the_delete_that_won(store: StateDir) -> None:
    """A command blocked on the lock while delete removes the container: not found, no crash."""
    with store.create(new_state()):
        pass
    outcome: list[object] = []
    holder = store.lock("c1")

    def wait_for_lock() -> None:
        try:
            store.lock("c1").release()
            outcome.append("locked")
        except ContainerNotFound as exc:
            outcome.append(exc)

    waiter = threading.Thread(target=wait_for_lock)
    waiter.start()
    time.sleep(0.1)
    store.remove("c1")
    holder.release()
    waiter.join(10)
    assert len(outcome) == 1
    assert isinstance(outcome[0], ContainerNotFound)
    assert store.ids() == []


def test_concurrent_saves_never_leave_a_torn_file(store: StateDir) -> None:
    with store.create(new_state()):
        pass
    script = (
        "import sys; sys.path.insert(0, sys.argv[1])\n"
        "from asyncinit.oci._store import StateDir\n"
        "d = StateDir(sys.argv[2])\n"
        "for i in range(200):\n"
        "    with d.lock('c1'):\n"
        "        s = d.load('c1'); s.annotations = {'n': str(i) * 50}; d.save(s)\n"
    )
    root = str(CHECKOUT)
    writers = [subprocess.Popen([sys.executable, "-c", script, root, store.root]) for _ in range(3)]
    for _ in range(200):
        store.load("c1")  # never a partial file, even without the lock
    assert [w.wait(60) for w in writers] == [0, 0, 0]
    assert os.listdir(store.path("c1")) == ["state.json"]


def test_ids_skip_other_files(store: StateDir) -> None:
    for name in ("b", "a"):
        with store.create(new_state(name)):
            pass
    Path(store.root, "stray-file").write_text("")  # only directories are containers
    os.mkdir(os.path.join(store.root, "bad name"))
    assert store.ids() == ["a", "b"]
    store.remove("a")
    assert store.ids() == ["b"]
    assert StateDir(store.root + "-missing").ids() == []


def test_live_status_follows_the_process(store: StateDir) -> None:
    state = running_as_me(new_state())
    assert live_status(state) == "running"
    state.status = "paused"
    assert live_status(state) == "paused"
    state.pid_start += 1  # same pid, another process: a recycled pid
    assert live_status(state) == "stopped"
    child = subprocess.Popen(["true"])
    start = process_start_time(child.pid)
    deadline = time.monotonic() + 10
    while process_start_time(child.pid) is not None and time.monotonic() < deadline:
        time.sleep(0.01)  # exited, not yet reaped: a zombie reads stopped
    state.pid, state.pid_start = child.pid, start or 0
    assert live_status(state) == "stopped"
    child.wait()
    assert live_status(state) == "stopped"


def test_a_half_created_container_reads_stopped_once_its_creator_died() -> None:
    state = new_state()
    assert live_status(state) == "creating"  # this process is its creator
    child = subprocess.Popen(["true"])
    start = process_start_time(child.pid) or 0
    child.wait()
    state.creator, state.creator_start = child.pid, start
    assert live_status(state) == "stopped"


def test_rfc3339_nano() -> None:
    assert rfc3339_nano(1_764_654_773_173_519_779) == "2025-12-02T05:52:53.173519779Z"
    assert rfc3339_nano(1_764_654_773_170_000_000) == "2025-12-02T05:52:53.17Z"
    assert rfc3339_nano(1_764_654_773_000_000_000) == "2025-12-02T05:52:53Z"


# --- output ----------------------------------------------------------------------------------

RUNC_LIST = (  # runc 1.1.5's `list`, captured on this machine
    "ID          PID         STATUS      BUNDLE              CREATED"
    "                          OWNER\n"
    "t1          18475       created     /tmp/oci-helper/b   2026-12-02T05:52:53.173519779Z"
    "   root\n"
)
RUNC_STATE = """{
  "ociVersion": "1.0.2-dev",
  "id": "t1",
  "pid": 18475,
  "status": "created",
  "bundle": "/tmp/oci-helper/b",
  "rootfs": "/tmp/oci-helper/b/rootfs",
  "created": "2026-12-02T05:52:53.173519779Z",
  "annotations": {
    "a.b": "c"
  },
  "owner": ""
}"""


def runc_like_state() -> State:
    return State(
        "t1",
        bundle="/tmp/oci-helper/b",
        rootfs="/tmp/oci-helper/b/rootfs",
        status="created",
        pid=18475,
        created="2026-12-02T05:52:53.173519779Z",
        annotations={"a.b": "c"},
    )


def test_state_and_list_print_as_runc() -> None:
    state = runc_like_state()
    assert state_json(state.spec("created")) == RUNC_STATE
    assert list_output([state.spec("created", "root")], "table", quiet=False) == RUNC_LIST
    document = json.loads(list_output([state.spec("created", "root")], "json", quiet=False))
    assert list(document[0]) == [
        "ociVersion", "id", "pid", "status", "bundle", "rootfs", "created", "annotations", "owner",
    ]  # fmt: skip
    assert list_output([], "json", quiet=False) == "null\n"
    assert list_output([state.spec("created")], "table", quiet=True) == "t1\n"
    assert state.spec("stopped")["pid"] == 0
    with pytest.raises(OciUsageError, match="invalid format option"):
        list_output([], "yaml", quiet=False)


def test_tabulate_is_gos_tabwriter() -> None:
    """Widest cell + 3, at least 12; the last cell unpadded."""
    assert tabulate([("a", "b"), ("long-cell-value", "x")]) == (
        "a" + " " * 17 + "b\n" + "long-cell-value" + " " * 3 + "x\n"
    )
    assert tabulate([("a", "b")]) == "a" + " " * 11 + "b\n"


def test_ps_output() -> None:
    ps = (
        "UID          PID    PPID  C STIME TTY          TIME CMD\n"
        "root           1       0  0 05:00 ?        00:00:01 init\n"
        "root         200       1  0 05:01 ?        00:00:00 sleep 1000\n"
        "root         201     200  0 05:01 ?        00:00:00 sh -c x\n"
    )
    assert ps_filter(ps, [200, 201]) == "".join(ps.splitlines(keepends=True)[i] for i in (0, 2, 3))
    assert ps_json([200, 201]) == "[200,201]\n"
    with pytest.raises(ValueError, match="couldn't find PID field"):
        ps_filter("A B\n1 2\n", [1])


def test_state_and_list_commands(store: StateDir, capfd: pytest.CaptureFixture[str]) -> None:
    with store.create(running_as_me(new_state())):
        pass
    out = io.StringIO()
    assert main(["--root", store.root, "state", "c1"], stdout=out) == 0
    document = json.loads(out.getvalue())
    assert (document["status"], document["pid"]) == ("running", os.getpid())
    out = io.StringIO()
    assert main(["--root", store.root, "list", "--format=json"], stdout=out) == 0
    assert json.loads(out.getvalue())[0]["owner"] == pwd.getpwuid(os.getuid()).pw_name
    Path(store.path("c1", "state.json")).write_text("{")
    assert main(["--root", store.root, "state", "c1"], stdout=io.StringIO()) == 1
    assert "state.json: corrupt state file" in capfd.readouterr().err
    out = io.StringIO()
    assert main(["--root", store.root, "list"], stdout=out) == 0  # the corrupt one is skipped
    assert "load container c1" in capfd.readouterr().err
