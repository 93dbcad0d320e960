"""runc's cgroup commands, asyncinit against runc 1.1.5: pause, resume, update, events,
ps and kill --all.

Each runtime runs with its own temporary ``--root`` on the same bundle.  The
``runtime`` tests hold every runtime to runc's exit codes and messages; the
``pair`` tests start one container under each runtime and compare what they
print and the cgroup files they leave (v1 here, v2 in the guest of tests/vm/run).
Nothing is left behind (``host_unchanged``: mounts and cgroups).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from asyncinit.cgroups._convert import cpu_shares_to_weight
from tests.support import CHECKOUT, oci
from tests.support.host import cgroup_layout
from tests.support.oci import Runtime, new_id
from tests.support.runc import RUNC

pytestmark = pytest.mark.integration

runtime = oci.runtime
write_config = oci.write_config
Pair = tuple[Runtime, Runtime]

V1_FILES = {
    "cpu": ("cpu.cfs_quota_us", "cpu.cfs_period_us", "cpu.shares"),
    "cpuset": ("cpuset.cpus", "cpuset.mems"),
    "memory": (
        "memory.limit_in_bytes",
        "memory.soft_limit_in_bytes",
        "memory.memsw.limit_in_bytes",
    ),
    "pids": ("pids.max",),
    "blkio": ("blkio.weight", "blkio.bfq.weight"),
}
V2_FILES = (
    "cpu.max",
    "cpu.weight",
    "cpuset.cpus",
    "cpuset.mems",
    "memory.max",
    "memory.low",
    "memory.swap.max",
    "pids.max",
    "io.bfq.weight",
    "io.weight",
)


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[Pair]:
    """asyncinit and runc, each with its own root; whatever a test leaves is deleted."""
    if RUNC is None:
        pytest.skip("runc is not installed")
    both = (Runtime("asyncinit", tmp_path / "root-a"), Runtime("runc", tmp_path / "root-r"))
    yield both
    for rt in both:
        for entry in rt.root.iterdir() if rt.root.exists() else ():
            rt("delete", "--force", entry.name)


def started(rt: Runtime, bundle: Path, *, start: bool = True) -> str:
    cid = new_id()
    code, _, err = rt("create", "--bundle", str(bundle), cid)
    assert code == 0, err
    if start:
        assert rt("start", cid)[0] == 0
    return cid


def init_pid(rt: Runtime, cid: str) -> int:
    return int(json.loads(rt("state", cid)[1])["pid"])


def cgroup_dirs_of(pid: int) -> dict[str, str]:
    """controller -> the cgroup directory of ``pid`` ("" on a pure v2 host)."""
    lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    paths = {}
    for line in lines:
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(",") if controllers else [""]:
            paths[controller] = path
    if cgroup_layout() == "v2":
        return {"": "/sys/fs/cgroup" + paths[""]}
    return {c: f"/sys/fs/cgroup/{c}{paths[c]}" for c in V1_FILES if c in paths}


def cgroup_values(pid: int) -> dict[str, str]:
    """The limit files ``update`` writes, as they read now (those that exist)."""
    dirs = cgroup_dirs_of(pid)
    if "" in dirs:
        wanted = [(dirs[""], name) for name in V2_FILES]
    else:
        wanted = [(dirs[c], name) for c, names in V1_FILES.items() if c in dirs for name in names]
    values = {}
    for directory, name in wanted:
        path = Path(directory, name)
        if path.exists():
            values[name] = path.read_text().strip()
    return values


def frozen(pid: int) -> bool:
    dirs = cgroup_dirs_of(pid)
    if "" in dirs:
        return Path(dirs[""], "cgroup.freeze").read_text().strip() == "1"
    path = Path(f"/sys/fs/cgroup/freezer{_path_of(pid, 'freezer')}/freezer.state")
    return path.read_text().strip() == "FROZEN"


def _path_of(pid: int, controller: str) -> str:
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            return path
    raise LookupError(controller)


# -- pause / resume ---------------------------------------------------------------------


def test_pause_resume_and_their_refusals(
    runtime: Runtime, write_config: Callable[..., Path]
) -> None:
    cid = started(runtime, write_config("sleep", "1000"))
    pid = init_pid(runtime, cid)
    assert runtime("pause", cid) == (0, "", "")
    assert runtime.status(cid) == "paused"
    assert frozen(pid)
    listed = runtime("list", "--format", "json")[1]
    assert [c["status"] for c in json.loads(listed)] == ["paused"]
    assert runtime("pause", cid) == (1, "", "container not running")
    code, _, err = runtime("delete", cid)
    assert (code, err) == (1, f"cannot delete container {cid} that is not stopped: paused")
    assert runtime("resume", cid) == (0, "", "")
    assert runtime.status(cid) == "running"
    assert not frozen(pid)
    assert runtime("resume", cid) == (1, "", "container not paused")
    assert runtime("pause", cid)[0] == 0
    assert runtime("delete", "--force", cid) == (0, "", "")


def test_pause_refusals_of_missing_and_stopped(
    runtime: Runtime, write_config: Callable[..., Path]
) -> None:
    for command in ("pause", "resume", "update", "events", "ps"):
        assert runtime(command, "nope") == (1, "", "container does not exist"), command
    cid = started(runtime, write_config("true"))
    assert runtime.wait_stopped(cid) == "stopped"
    assert runtime("pause", cid) == (1, "", "container not running")
    assert runtime("resume", cid) == (1, "", "container not paused")
    assert runtime("update", "--pids-limit", "10", cid) == (1, "", "container not running")
    assert runtime("events", "--stats", cid) == (
        1,
        "",
        f"container with id {cid} is not running",
    )
    assert runtime("delete", cid) == (0, "", "")


def test_a_paused_created_container_resumes_to_created(
    runtime: Runtime, write_config: Callable[..., Path]
) -> None:
    cid = started(runtime, write_config("sleep", "1000"), start=False)
    assert runtime("pause", cid)[0] == 0
    assert runtime.status(cid) == "paused"
    assert runtime("resume", cid)[0] == 0
    assert runtime.status(cid) == "created"  # runc: the exec fifo still waits
    assert runtime("start", cid)[0] == 0
    assert runtime.status(cid) == "running"
    assert runtime("delete", "--force", cid)[0] == 0


def test_sigkill_reaches_a_paused_container(
    runtime: Runtime, write_config: Callable[..., Path]
) -> None:
    cid = started(runtime, write_config("sleep", "1000"))
    assert runtime("pause", cid)[0] == 0
    assert runtime("kill", cid, "KILL")[0] == 0  # thawed so that it dies (runc)
    assert runtime.wait_stopped(cid) == "stopped"
    assert runtime("delete", cid)[0] == 0


# -- update -----------------------------------------------------------------------------

UPDATE_ERRORS = [
    (["--memory", "abc"], "invalid value for memory: invalid size: 'abc'"),
    (["--memory-swap", "1x"], "invalid value for memory-swap: invalid size: '1x'"),
    (
        ["--cpu-period", "x"],
        'invalid value for cpu-period: strconv.ParseUint: parsing "x": invalid syntax',
    ),
    (
        ["--cpu-share", "-2"],
        'invalid value for cpu-share: strconv.ParseUint: parsing "-2": invalid syntax',
    ),
    (
        ["--cpu-quota", "1.5"],
        'invalid value for cpu-quota: strconv.ParseInt: parsing "1.5": invalid syntax',
    ),
    (
        ["--cpu-rt-runtime", "99999999999999999999"],
        "invalid value for cpu-rt-runtime: strconv.ParseInt: "
        'parsing "99999999999999999999": value out of range',
    ),
    (["--l3-cache-schema", "L3:0=f"], "Intel RDT/CAT: l3 cache schema is not enabled"),
    (["--mem-bw-schema", "MB:0=50"], "Intel RDT/MBA: memory bandwidth schema is not enabled"),
    (["--pids-limit", "x"], 'invalid value "x" for flag -pids-limit: parse error'),
]


def test_update_refuses_bad_values_as_runc(
    runtime: Runtime, write_config: Callable[..., Path], tmp_path: Path
) -> None:
    if Path("/sys/fs/resctrl/info").exists():
        pytest.skip("Intel RDT is mounted here: runc would accept the schemas")
    cid = started(runtime, write_config("sleep", "1000"))
    for flags, message in UPDATE_ERRORS:
        code, _, err = runtime("update", *flags, cid)  # runc prints its usage on a flag error
        assert (code, err) == (1, message), flags
    bad = tmp_path / "bad.json"
    bad.write_text('{"pids": {"limit": "x"}}')
    code, _, err = runtime("update", "-r", str(bad), cid)
    assert code == 1
    assert "pids" in err
    assert "limit" in err
    assert runtime("update", "-r", str(tmp_path / "missing.json"), cid)[0] == 1
    assert runtime("delete", "--force", cid)[0] == 0


def test_update_warns_that_kernel_memory_is_ignored(
    runtime: Runtime, write_config: Callable[..., Path]
) -> None:
    cid = started(runtime, write_config("sleep", "1000"))
    result = subprocess.run(
        [*runtime.argv, "update", "--kernel-memory", "10M", cid],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(CHECKOUT)},
        check=False,
    )
    assert result.returncode == 0
    assert 'level=warning msg="Kernel memory settings are ignored and will be removed"' in (
        result.stderr
    )
    assert runtime("delete", "--force", cid)[0] == 0


UPDATES = [
    ["--pids-limit", "50"],
    ["--cpu-quota", "20000"],  # the period stays the one kept in the state
    ["--cpu-period", "50000"],
    ["--cpu-share", "512", "--cpuset-cpus", "0"],
    ["--memory", "64m", "--memory-reservation", "16m"],
    ["--memory", "32m", "--memory-swap", "64m"],
    ["--cpu-quota", "-1"],
    ["--blkio-weight", "300"],
    ["--memory", "-1"],
]


def _resources_file(tmp_path: Path) -> list[str]:
    path = tmp_path / "resources.json"
    path.write_text(
        json.dumps(
            {
                "memory": {"limit": 50_000_000},
                "cpu": {"shares": 300, "period": 100000, "quota": 30000},
                "pids": {"limit": 33},
                "hugepageLimits": [{"pageSize": "2MB", "limit": 0}],  # ignored, as by runc
            }
        )
    )
    return ["-r", str(path)]


def comparable(pid: int) -> dict[str, str]:
    """The limit files but v2's cpu.weight: runc 1.1.5 converts cpu shares linearly
    (512 -> 20), asyncinit as runc 1.3 does (512 -> 59; docs/cgroups.md)."""
    values = cgroup_values(pid)
    values.pop("cpu.weight", None)
    return values


def test_update_writes_what_runc_writes(
    pair: Pair, write_config: Callable[..., Path], tmp_path: Path
) -> None:
    config = write_config("sleep", "1000")
    ids = [started(rt, config) for rt in pair]
    pids = [init_pid(rt, cid) for rt, cid in zip(pair, ids, strict=True)]
    assert comparable(pids[0]) == comparable(pids[1])
    for flags in [*UPDATES, _resources_file(tmp_path)]:
        results = [rt("update", *flags, cid) for rt, cid in zip(pair, ids, strict=True)]
        assert results[0] == results[1], flags
        assert results[0][0] == 0, (flags, results)
        assert comparable(pids[0]) == comparable(pids[1]), flags
    values = cgroup_values(pids[0])
    assert values["pids.max"] == "33"
    assert values.get("cpu.weight", str(cpu_shares_to_weight(300))) == str(
        cpu_shares_to_weight(300)
    )
    assert values.get("cpu.shares", "300") == "300"
    assert values.get("cpu.max", "30000 100000") == "30000 100000"
    assert values.get("cpu.cfs_quota_us", "30000") == "30000"
    for rt, cid in zip(pair, ids, strict=True):
        assert rt("delete", "--force", cid)[0] == 0


def test_update_from_stdin_and_pause_keep_the_resources(
    runtime: Runtime, write_config: Callable[..., Path]
) -> None:
    cid = started(runtime, write_config("sleep", "1000"))
    pid = init_pid(runtime, cid)
    result = subprocess.run(
        [*runtime.argv, "update", "-r", "-", cid],
        input='{"pids": {"limit": 42}}',
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(CHECKOUT)},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert cgroup_values(pid)["pids.max"] == "42"
    assert runtime("pause", cid)[0] == 0
    assert runtime("update", "--pids-limit", "43", cid)[0] == 0  # paused: allowed
    assert cgroup_values(pid)["pids.max"] == "43"
    assert runtime.status(cid) == "paused"
    assert runtime("delete", "--force", cid)[0] == 0


# -- events -----------------------------------------------------------------------------


def skeleton(value: Any) -> Any:
    """The shape of a JSON value: keys kept, numbers and strings reduced to their kind."""
    if isinstance(value, dict):
        return {key: skeleton(item) for key, item in value.items()}
    if isinstance(value, list):
        return ["list"] if value else []
    return type(value).__name__


def _stats(rt: Runtime, cid: str) -> dict[str, Any]:
    code, out, err = rt("events", "--stats", cid)
    assert code == 0, err
    assert out.endswith("}\n")
    assert out.count("\n") == 1  # one JSON line, as json.Encoder writes it
    event: dict[str, Any] = json.loads(out)
    return event


def test_events_stats_has_runcs_shape(pair: Pair, write_config: Callable[..., Path]) -> None:
    config = write_config("sleep", "1000")
    ids = [started(rt, config) for rt in pair]
    events = [_stats(rt, cid) for rt, cid in zip(pair, ids, strict=True)]
    for event, cid in zip(events, ids, strict=True):
        assert (event["type"], event["id"]) == ("stats", cid)
        assert list(event) == ["type", "id", "data"]
    ours, theirs = (event["data"] for event in events)
    assert list(ours) == list(theirs)  # cpu, cpuset, memory, pids, blkio, hugetlb...
    assert ours["pids"] == theirs["pids"] == {"current": 1}  # no limit: omitted, as by Go
    for data in (ours, theirs):  # counters that may be zero in one and not the other
        data["memory"].pop("cache", None)
        data.pop("blkio")
        data["cpu"]["usage"].pop("percpu_user", None)
        data["cpu"]["usage"].pop("percpu_kernel", None)
        for entry in data["memory"].values():
            if isinstance(entry, dict) and "failcnt" in entry:
                entry.pop("usage", None)
                entry.pop("max", None)
    assert skeleton(ours) == skeleton(theirs)
    assert ours["cpuset"] == theirs["cpuset"]
    assert ours["memory"]["usage"]["limit"] == theirs["memory"]["usage"]["limit"]
    for rt, cid in zip(pair, ids, strict=True):
        assert rt("delete", "--force", cid)[0] == 0


def test_events_interval_is_checked_as_runc(
    runtime: Runtime, write_config: Callable[..., Path]
) -> None:
    cid = started(runtime, write_config("sleep", "1000"))
    for interval, message in (
        ("abc", 'invalid value "abc" for flag -interval: parse error'),
        ("1.5", 'invalid value "1.5" for flag -interval: parse error'),
        ("0", "duration interval must be greater than 0"),
        ("-1s", "duration interval must be greater than 0"),
    ):
        code, _, err = runtime("events", "--interval", interval, cid)
        assert (code, err) == (1, message), interval
    assert runtime("delete", "--force", cid)[0] == 0


HOG = "while [ ! -e /go ]; do sleep 0.1; done; x=0123456789abcdef; while :; do x=$x$x; done"


def test_events_streams_stats_and_reports_an_oom_kill(
    runtime: Runtime, write_config: Callable[..., Path]
) -> None:
    """Stats lines every interval, then ``{"type":"oom"}`` when the kernel kills the
    container's shell at its memory limit; the stream ends (runc on v1: once deleted)."""
    bundle = write_config("sh", "-c", HOG)
    config = json.loads((bundle / "config.json").read_text())
    config["linux"]["resources"]["memory"] = {"limit": 32 << 20, "swap": 32 << 20}
    (bundle / "config.json").write_text(json.dumps(config))
    cid = started(runtime, bundle)
    stream = subprocess.Popen(
        [*runtime.argv, "events", "--interval", "200ms", cid],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONPATH": str(CHECKOUT)},
    )
    try:
        assert stream.stdout is not None
        first = json.loads(stream.stdout.readline())
        assert (first["type"], first["id"]) == ("stats", cid)
        assert first["data"]["memory"]["usage"]["limit"] == 32 << 20
        (bundle / "rootfs" / "go").touch()
        kinds = []
        deadline = time.monotonic() + 120
        while "oom" not in kinds and time.monotonic() < deadline:
            line = stream.stdout.readline()
            if not line:
                break
            event = json.loads(line)
            kinds.append(event["type"])
            if event["type"] == "oom":
                assert event == {"type": "oom", "id": cid}
        assert "oom" in kinds
        assert runtime.wait_stopped(cid) == "stopped"
        assert runtime("delete", cid)[0] == 0
        assert stream.wait(timeout=60) == 0
    finally:
        stream.kill()
        stream.communicate()


# -- ps and kill --all ------------------------------------------------------------------


def test_ps_lists_the_cgroups_processes(
    runtime: Runtime, write_config: Callable[..., Path]
) -> None:
    cid = started(runtime, write_config("sh", "-c", "sleep 1000 & exec sleep 1001"))
    pid = init_pid(runtime, cid)
    for _ in range(100):  # the background sleep may still be forking
        code, out, _ = runtime("ps", "--format", "json", cid)
        if len(json.loads(out)) == 2:
            break
        time.sleep(0.05)
    pids = json.loads(out)
    assert code == 0
    assert pid in pids
    assert len(pids) == 2
    assert out == json.dumps(pids, separators=(",", ":")) + "\n"
    code, out, _ = runtime("ps", cid, "-o", "pid,args")
    lines = out.splitlines()
    assert code == 0
    assert lines[0].split() == ["PID", "COMMAND"]
    assert sorted(line.split(None, 1)[1] for line in lines[1:]) == ["sleep 1000", "sleep 1001"]
    assert runtime("ps", "-f", "yaml", cid) == (1, "", "invalid format option")
    code, _, err = runtime("ps", cid, "--", "-o", "pid")
    assert code == 1
    assert err.startswith("exit status 1: error: garbage option")
    assert runtime("kill", cid, "KILL")[0] == 0
    assert runtime.wait_stopped(cid) == "stopped"
    for _ in range(100):  # the background sleep dies with the pid namespace
        if runtime("ps", "-f", "json", cid)[1] == "null\n":
            break
        time.sleep(0.05)
    assert runtime("ps", "-f", "json", cid) == (0, "null\n", "")  # Go's nil slice
    assert runtime("delete", cid)[0] == 0


def test_kill_all_signals_every_process_of_the_cgroup(
    runtime: Runtime, write_config: Callable[..., Path]
) -> None:
    """PID 1 (sh, no handler) ignores SIGTERM from outside; its children do not: with
    --all they die, ``wait`` returns and the container ends."""
    cid = started(runtime, write_config("sh", "-c", "sleep 1000 & sleep 1001 & wait"))
    time.sleep(0.3)
    assert runtime("kill", cid, "TERM")[0] == 0
    time.sleep(0.3)
    assert runtime.status(cid) == "running"
    assert runtime("kill", "--all", cid, "TERM") == (0, "", "")
    assert runtime.wait_stopped(cid) == "stopped"
    assert runtime("kill", "--all", cid, "KILL") == (0, "", "")  # stopped: no error
    assert runtime("delete", cid)[0] == 0


def test_kill_all_thaws_a_paused_container(
    runtime: Runtime, write_config: Callable[..., Path]
) -> None:
    """runc 1.1.5 freezes around the signal and thaws after, whatever the state was."""
    cid = started(runtime, write_config("sleep", "1000"))
    pid = init_pid(runtime, cid)
    assert runtime("pause", cid)[0] == 0
    assert runtime("kill", "--all", cid, "USR2") == (0, "", "")  # PID 1 ignores it
    assert not frozen(pid)
    assert runtime.status(cid) == "running"
    assert runtime("delete", "--force", cid)[0] == 0
