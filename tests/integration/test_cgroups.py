"""The cgroups library against the real kernel: v1 here, v2 in the run-in-vm guest.

Each test creates a test-named cgroup, moves a forked child into it and checks
what the kernel does; ``no_cgroup_leak`` compares the cgroup trees before and
after, so every test also proves it left nothing behind.
"""

from __future__ import annotations

import errno
import os
import select
import signal
import stat
import tempfile
import time

import pytest

from asyncinit._errors import CgroupError
from asyncinit.cgroups import FsManager, Resources, compute_plan, resources_from_dict
from asyncinit.cgroups._devices import Rule
from tests.support.cgroups import Child, managed, unique_name
from tests.support.containers import needs_root

pytestmark = [needs_root, pytest.mark.usefixtures("no_cgroup_leak")]


def _own_cgroups(pid: int) -> dict[str, str]:
    out = {}
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            out[controllers] = path
    return out


def _read(directory: str, name: str) -> str:
    with open(os.path.join(directory, name)) as f:
        return f.read().strip()


def test_child_enters_every_hierarchy_and_limits_are_written() -> None:
    resources = resources_from_dict(
        {"pids": {"limit": 42}, "memory": {"limit": 64 << 20}, "cpu": {"shares": 512}}
    )
    child = Child(lambda: _own_cgroups(os.getpid()))
    with managed(resources) as manager:
        manager.apply(child.pid)
        child.start()
        seen = child.result()
        for hierarchy in manager.plan["hierarchies"]:
            suffix = "/" + manager.plan["path"]
            key = ",".join(hierarchy["controllers"]) if hierarchy["controllers"] else ""
            assert seen[key].endswith(suffix), (key, seen)
        assert _read(manager.directory("pids"), "pids.max") == "42"
        memory = "memory.limit_in_bytes" if manager.version == 1 else "memory.max"
        assert int(_read(manager.directory("memory"), memory)) == 64 << 20
        cpu_file, value = ("cpu.shares", "512") if manager.version == 1 else ("cpu.weight", "59")
        assert _read(manager.directory("cpu"), cpu_file) == value
    assert not manager.exists()


def _fork_loop(count: int) -> dict[str, int]:
    made, refused = 0, 0
    children = []
    for _ in range(count):
        try:
            pid = os.fork()
        except BlockingIOError:
            refused += 1
            continue
        if pid == 0:
            os.closerange(3, 1024)  # let the parent's report pipe close
            time.sleep(30)
            os._exit(0)
        made += 1
        children.append(pid)
    return {"made": made, "refused": refused}


def test_pids_limit_stops_a_fork_loop() -> None:
    child = Child(lambda: _fork_loop(20))
    with managed(resources_from_dict({"pids": {"limit": 5}})) as manager:
        manager.apply(child.pid)
        child.start()
        result = child.result()
        assert result == {"made": 4, "refused": 16}  # the child itself is the fifth
        assert len(manager.pids()) == 4  # its children, orphaned and still sleeping
    # destroy() killed the orphans


def _hog() -> None:
    chunks = []
    for _ in range(64):
        chunks.append(b"\x01" * (16 << 20))  # written, so really charged
    os._exit(3)


def test_memory_limit_oom_kills_a_hog_and_the_event_fires() -> None:
    limit = 48 << 20
    resources = resources_from_dict({"memory": {"limit": limit, "swap": limit}})
    child = Child(_hog)
    with managed(resources) as manager:
        manager.apply(child.pid)
        with manager.oom_events() as events:
            assert not select.select([events.fileno()], [], [], 0)[0]
            child.start()
            child.result()
            assert os.WIFSIGNALED(child.status)
            assert os.WTERMSIG(child.status) == signal.SIGKILL
            assert select.select([events.fileno()], [], [], 5)[0], "no OOM event"
            assert events.read() >= 1
            stats = manager.stats()["memory"]
            assert stats["usage"]["limit"] == limit
            assert stats["usage"]["max"] >= limit - (1 << 20) or stats["usage"]["failcnt"] > 0


def _spin(seconds: float) -> int:
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end:
        n += 1
    return n


def test_cpu_quota_throttling_shows_in_stats() -> None:
    resources = resources_from_dict({"cpu": {"quota": 10000, "period": 100000}})
    child = Child(lambda: _spin(0.6))
    with managed(resources) as manager:
        manager.apply(child.pid)
        child.start()
        child.result()
        cpu = manager.stats()["cpu"]
        assert cpu["throttling"]["throttledPeriods"] > 0
        assert cpu["throttling"]["throttledTime"] > 0
        assert 0 < cpu["usage"]["total"] < 0.3e9  # 10% of 0.6 s, with slack


def _probe_devices() -> dict[str, object]:
    out: dict[str, object] = {}
    for name in ("/dev/null", "/dev/zero"):
        try:
            os.close(os.open(name, os.O_RDWR))
            out[name] = "ok"
        except OSError as exc:
            out[name] = errno.errorcode[exc.errno or 0]
    with tempfile.TemporaryDirectory() as tmp:
        for name, (major, minor) in (("null", (1, 3)), ("zero", (1, 5))):
            try:
                os.mknod(os.path.join(tmp, name), stat.S_IFCHR | 0o600, os.makedev(major, minor))
                out[f"mknod {name}"] = "ok"
            except OSError as exc:
                out[f"mknod {name}"] = errno.errorcode[exc.errno or 0]
    return out


def _devices_resources() -> Resources:
    # deny everything, allow /dev/zero only: /dev/null is denied for open and mknod
    return resources_from_dict(
        {
            "devices": [
                {"allow": False, "access": "rwm"},
                {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "rwm"},
            ]
        }
    )


def test_denied_device_cannot_be_opened_or_created() -> None:
    child = Child(_probe_devices)
    with managed(_devices_resources(), default_devices=()) as manager:
        manager.apply(child.pid)
        child.start()
        result = child.result()
    assert result == {
        "/dev/null": "EPERM",
        "/dev/zero": "ok",
        "mknod null": "EPERM",
        "mknod zero": "ok",
    }


def _unified_hybrid() -> str | None:
    path = "/sys/fs/cgroup/unified"
    try:
        with open("/proc/self/mountinfo") as f:
            if any(line.split()[4] == path and " - cgroup2 " in line for line in f):
                return path
    except OSError:
        pass
    return None


@pytest.mark.skipif(_unified_hybrid() is None, reason="no cgroup2 beside the v1 hierarchies")
def test_ebpf_device_filter_on_the_hybrid_unified_hierarchy() -> None:
    """The v2 eBPF filter works on a hybrid host too: its cgroup2 hierarchy is real."""
    from asyncinit.cgroups._host import Host, detect_host

    v1 = detect_host()
    host = Host(True, (), "/sys/fs/cgroup/unified", (), {"": v1.own.get("", "/")})
    child = Child(_probe_devices)
    plan = compute_plan(
        _devices_resources(), container_id=unique_name(), host=host, default_devices=()
    )
    manager = FsManager(plan)
    try:
        manager.apply(child.pid)
        child.start()
        result = child.result()
    finally:
        manager.destroy()
    assert result == {
        "/dev/null": "EPERM",
        "/dev/zero": "ok",
        "mknod null": "EPERM",
        "mknod zero": "ok",
    }


def _tick() -> None:
    while True:
        os.write(1, b".")
        time.sleep(0.01)


def _drain(fd: int, seconds: float) -> int:
    got = 0
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        if select.select([fd], [], [], left)[0]:
            got += len(os.read(fd, 4096))
    return got


def test_freeze_stops_the_processes_and_thaw_resumes_them() -> None:
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        os.dup2(w, 1)
        _tick()
    os.close(w)
    try:
        with managed(None) as manager:
            manager.apply(pid)
            assert _drain(r, 0.2) > 0
            manager.freeze()
            assert manager.freezer_state() == "frozen"
            _drain(r, 0.05)  # what was written before the freeze
            assert _drain(r, 0.3) == 0
            manager.thaw()
            assert manager.freezer_state() == "thawed"
            assert _drain(r, 0.2) > 0
    finally:
        os.close(r)
        os.waitpid(pid, 0)  # destroy() killed it


def _daemonize(w: int) -> int:
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            os.write(w, str(os.getpid()).encode())
            os.closerange(3, 1024)  # let the parent's report pipe close
            time.sleep(60)
        os._exit(0)
    return 0


def test_kill_all_reaches_a_double_forked_setsid_daemon() -> None:
    r, w = os.pipe()
    child = Child(lambda: _daemonize(w))
    with managed(None) as manager:
        manager.apply(child.pid)
        child.start()
        child.result()  # the child has exited; its grandchild runs on, reparented
        daemon = int(os.read(r, 32))
        pidfd = os.pidfd_open(daemon)
        try:
            assert daemon in manager.pids()  # (the middle process may still be exiting)
            manager.kill_all()
            assert select.select([pidfd], [], [], 0)[0], "the daemon survived kill_all"
            assert manager.pids() == []
        finally:
            os.close(pidfd)
    os.close(r)
    os.close(w)
    assert not manager.exists()


def test_a_cgroup_that_holds_processes_is_joined_with_a_warning_and_never_emptied() -> None:
    """runc 1.1.5 joins it ("container's cgroup is not empty", a deprecation warning):
    so do we, but its processes are not the container's: destroy leaves them and the
    directory they keep busy."""
    child = Child(lambda: time.sleep(30))
    name = unique_name()
    first = FsManager(compute_plan(None, container_id=name))
    try:
        first.apply(child.pid)
        second = FsManager(compute_plan(None, container_id=name))
        warnings = second.apply()
        assert second.shared
        assert len(warnings) == len(second.plan["hierarchies"])
        assert "is not empty: 1 process(es) found" in warnings[0]
        second.destroy()
        assert first.exists()
        assert os.waitpid(child.pid, os.WNOHANG) == (0, 0)  # still running
    finally:
        first.destroy()
        child.kill()


def test_a_frozen_cgroup_is_refused() -> None:
    with managed(None) as first:
        first.apply()
        first.freeze()
        second = FsManager(compute_plan(None, container_id=first.plan["path"]))
        with pytest.raises(CgroupError, match="unexpectedly frozen") as info:
            second.apply()
        assert info.value.errno == errno.EBUSY
        first.thaw()


def test_absolute_path_from_the_root_relative_under_our_own() -> None:
    parent = unique_name()
    child = Child(lambda: _own_cgroups(os.getpid()))
    with managed(None, path=f"/{parent}/ctr") as manager:
        manager.apply(child.pid)
        child.start()
        seen = child.result()
        assert f"/{parent}/ctr" in seen.values()
        for hierarchy in manager.plan["hierarchies"]:
            assert hierarchy["directory"].endswith(f"/{parent}/ctr")
    # runc leaves the parents it created: so does destroy(); the test removes them
    for hierarchy in manager.plan["hierarchies"]:
        os.rmdir(os.path.dirname(hierarchy["directory"]))
    relative = compute_plan(None, container_id="x", cgroups_path="a/../../b")
    assert relative["path"] == "b"


def test_update_changes_the_limits_of_a_running_cgroup() -> None:
    child = Child(lambda: time.sleep(30))
    start = resources_from_dict({"pids": {"limit": 10}, "memory": {"limit": 64 << 20}})
    with managed(start) as manager:
        manager.apply(child.pid)
        manager.update(
            resources_from_dict({"pids": {"limit": 20}, "cpu": {"quota": 20000, "period": 50000}})
        )
        assert _read(manager.directory("pids"), "pids.max") == "20"
        memory = "memory.limit_in_bytes" if manager.version == 1 else "memory.max"
        assert int(_read(manager.directory("memory"), memory)) == 64 << 20  # kept
        if manager.version == 1:
            assert _read(manager.directory("cpu"), "cpu.cfs_quota_us") == "20000"
        else:
            assert _read(manager.directory(), "cpu.max") == "20000 50000"
        assert manager.resources is not None
        assert manager.resources.pids is not None
        assert manager.resources.pids.limit == 20
    child.kill()


def test_a_limit_the_kernel_refuses_names_the_field_and_leaves_nothing() -> None:
    bad = {"blockIO": {"throttleReadBpsDevice": [{"major": 4000, "minor": 4000, "rate": 1}]}}
    with managed(resources_from_dict(bad)) as manager, pytest.raises(CgroupError) as info:
        manager.apply()
    assert info.value.field == "linux.resources.blockIO.throttleReadBpsDevice[0]"
    assert info.value.errno in (errno.ENODEV, errno.EINVAL, errno.ENOENT)
    assert not manager.exists()


def test_stats_have_runcs_shape() -> None:
    child = Child(lambda: _spin(0.05))
    with managed(resources_from_dict({"pids": {"limit": 7}})) as manager:
        manager.apply(child.pid)
        child.start()
        child.result()
        stats = manager.stats()
    assert set(stats) >= {"cpu", "memory", "pids", "blkio"}
    assert stats["pids"] == {"current": 0, "limit": 7}
    assert stats["cpu"]["usage"]["total"] > 0
    assert {"usage", "swap", "cache", "raw"} <= set(stats["memory"])
    assert set(stats["memory"]["usage"]) == {"limit", "usage", "max", "failcnt"}


def _as_nobody(body: object) -> object:
    os.setgroups([])
    os.setresgid(65534, 65534, 65534)
    os.setresuid(65534, 65534, 65534)
    return body()  # type: ignore[operator]


def _rootless(resources: object, path: str | None) -> dict[str, object]:
    manager = FsManager(compute_plan(resources, container_id=unique_name(), cgroups_path=path))  # type: ignore[arg-type]
    try:
        warnings = manager.apply(os.getpid())
    except CgroupError as exc:
        return {"error": str(exc), "field": exc.field}
    finally:
        manager.destroy() if manager.exists() else None
    return {"warnings": len(warnings), "plan_rootless": manager.plan["rootless"]}


def test_rootless_without_delegation_behaves_like_runc() -> None:
    """No permission: no limits and no path is fine (warned), limits or a path are errors."""
    cases = {
        "none": Child(lambda: _as_nobody(lambda: _rootless(None, None))),
        "limit": Child(
            lambda: _as_nobody(lambda: _rootless(resources_from_dict({"pids": {"limit": 5}}), None))
        ),
        "path": Child(lambda: _as_nobody(lambda: _rootless(None, f"/{unique_name()}"))),
    }
    results = {}
    for key, child in cases.items():
        child.start()
        results[key] = child.result()
    assert results["none"]["plan_rootless"] is True
    assert results["none"]["warnings"] >= 1
    assert results["limit"]["field"] == "linux.resources.pids.limit"
    assert "could not create" in results["limit"]["error"]
    assert "cannot create the cgroup" in results["path"]["error"]


def test_rules_that_punch_a_hole_in_a_wildcard_are_refused() -> None:
    from asyncinit.config import ConfigError

    rules = {
        "devices": [
            {"allow": True, "type": "c", "access": "rwm"},
            {"allow": False, "type": "c", "major": 1, "minor": 3, "access": "r"},
        ]
    }
    with pytest.raises(
        ConfigError, match=r"linux\.resources\.devices: c 1:3 r cannot punch a hole"
    ):
        compute_plan(resources_from_dict(rules), container_id="x", default_devices=())
    assert Rule("c", 1, 3, "r", False).line() == "c 1:3 r"


def _delegated(parent: str) -> dict[str, object]:
    """As nobody, in a cgroup delegated to nobody: a child cgroup with a pids limit."""
    resources = resources_from_dict({"pids": {"limit": 3}})
    plan = compute_plan(
        resources, container_id="x", cgroups_path=f"/{os.path.basename(parent)}/ctr"
    )
    manager = FsManager(plan, resources)
    try:
        warnings = manager.apply(0)
        made = _fork_loop(5)
        with open(os.path.join(parent, "init", "cgroup.procs"), "w") as f:
            f.write("0")  # out again: destroy() kills everything inside
        return {"rootless": plan["rootless"], "warnings": warnings, **made}
    finally:
        manager.destroy()


@pytest.mark.skipif(
    not os.path.exists("/sys/fs/cgroup/cgroup.subtree_control"), reason="cgroup v2 only"
)
def test_rootless_limits_work_in_a_delegated_v2_subtree() -> None:
    """As systemd delegates: the user owns a subtree whose leaf "init" holds its process."""
    parent = os.path.join("/sys/fs/cgroup", unique_name())
    leaf = os.path.join(parent, "init")
    os.mkdir(parent)
    os.mkdir(leaf)
    child = Child(lambda: _as_nobody(lambda: _delegated(parent)))
    try:
        with open(os.path.join(parent, "cgroup.subtree_control"), "w") as f:
            f.write("+pids +memory")
        for directory in (parent, leaf):
            for name in ("", "cgroup.procs", "cgroup.subtree_control", "cgroup.threads"):
                os.chown(os.path.join(directory, name), 65534, 65534)
        with open(os.path.join(leaf, "cgroup.procs"), "w") as f:
            f.write(str(child.pid))
        child.start()
        result = child.result()
    finally:
        child.kill()
        os.rmdir(leaf)
        os.rmdir(parent)
    assert result == {"rootless": True, "warnings": [], "made": 2, "refused": 3}


def _any_v2_host() -> object:
    """The host's v2 hierarchy: pure v2, or the cgroup2 beside a hybrid host's v1."""
    from asyncinit.cgroups._host import Host, detect_host

    host = detect_host()
    if host.unified:
        return host
    if _unified_hybrid() is None:
        return None
    return Host(True, (), "/sys/fs/cgroup/unified", (), {"": host.own.get("", "/")})


@pytest.mark.skipif(_any_v2_host() is None, reason="no cgroup2 hierarchy")
def test_fork_into_cgroup_starts_the_child_inside() -> None:
    """clone3(CLONE_INTO_CGROUP): born in the cgroup; Python, threads and fork work there."""
    import threading

    from asyncinit import _syscalls as sc

    host = _any_v2_host()
    resources = resources_from_dict({"pids": {"limit": 10}} if host.v2_controllers else {})  # type: ignore[attr-defined]
    with managed(resources, host=host) as manager:
        manager.apply()
        fd = manager.open_directory()
        r, w = os.pipe()
        try:
            pid = sc.fork_into_cgroup(fd)
            if pid == 0:  # pragma: no cover - child
                try:
                    thread = threading.Thread(target=lambda: None)
                    thread.start()
                    thread.join()
                    grandchild = os.fork()
                    if grandchild == 0:
                        os._exit(7)
                    exited = os.waitstatus_to_exitcode(os.waitpid(grandchild, 0)[1])
                    os.write(w, f"{_own_cgroups(os.getpid())['']} {exited} {os.getpid()}".encode())
                finally:
                    os._exit(0)
            os.close(w)
            seen, code, reported = os.read(r, 4096).decode().split()
            _, status = os.waitpid(pid, 0)
        finally:
            os.close(fd)
            os.close(r)
        assert os.waitstatus_to_exitcode(status) == 0
        assert seen.endswith("/" + manager.plan["path"])
        assert (code, int(reported)) == ("7", pid)
