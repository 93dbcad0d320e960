"""The harness itself: the sandbox keeps an engine's traces off the host, the checks catch leaks."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.containers import needs_root

from ._runtimes import RUNC, Runtime, read_trace, tracing_wrapper
from ._sandbox import CGROUP_ROOT, HostSnapshot, Sandbox, processes_mentioning
from .conftest import World, require

pytestmark = [pytest.mark.integration, needs_root, require("nsenter", "unshare", "ip")]


def test_sandbox_keeps_mounts_links_and_processes_private(tmp_path: Path) -> None:
    host = HostSnapshot()
    cache_existed = os.path.exists("/var/lib/containers/cache")
    sandbox = Sandbox(tmp_path)
    try:
        sandbox.run(["mount", "-t", "tmpfs", "tmpfs", str(tmp_path)], check=True)
        sandbox.run(["ip", "link", "add", "h0", "type", "veth", "peer", "name", "h1"], check=True)
        sandbox.run(["mkdir", "-p", "/var/lib/containers/cache"], check=True)
        sleeper = sandbox.popen(
            ["sh", "-c", 'sleep 1000; : "$0"', str(tmp_path)],  # sh stays, naming tmp_path
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        assert "h0" in sandbox.run(["ip", "-o", "link"], check=True).stdout
        deadline = time.monotonic() + 10
        while not any(
            p.split(": ", 1)[1].startswith("sh -c") for p in processes_mentioning(str(tmp_path))
        ):
            assert time.monotonic() < deadline, "the sleeper never started"
            time.sleep(0.02)
    finally:
        sandbox.close()
    assert sleeper.wait(timeout=10) != 0  # killed with the sandbox
    assert host.changes() == []
    assert processes_mentioning(str(tmp_path)) == []
    assert os.path.exists("/var/lib/containers/cache") == cache_existed
    with open("/proc/self/mountinfo") as f:
        assert str(tmp_path) not in f.read()


@pytest.mark.skipif(RUNC is None, reason="runc is not installed")
def test_world_reports_a_container_cgroup_the_runtime_left(tmp_path: Path) -> None:
    world = World("harness", Runtime("runc", RUNC), tmp_path)
    v1_pids = CGROUP_ROOT / "pids"  # a cgroup of either layout (v1 or pure v2)
    leaked = (v1_pids if v1_pids.is_dir() else CGROUP_ROOT) / "leaky-0123"
    try:
        world.sandbox.run([str(world.wrapper), "create", "--bundle", "/nonexistent", "leaky-0123"])
        leaked.mkdir()
    finally:
        problems = world.close()
    assert not leaked.exists()  # removed all the same
    assert any("container cgroups left" in p and "leaky-0123" in p for p in problems), problems


@pytest.mark.skipif(RUNC is None, reason="runc is not installed")
def test_tracing_wrapper_records_argv_stdio_and_exit(tmp_path: Path) -> None:
    assert RUNC is not None
    log = tmp_path / "trace"
    wrapper = tracing_wrapper(RUNC, tmp_path, log)
    assert wrapper.name == Path(RUNC).name  # podman decides things by the runtime's name
    result = subprocess.run(
        [str(wrapper), "--root", str(tmp_path / "root"), "state", "a-b"],
        input="",
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert "container does not exist" in result.stderr
    (call,) = read_trace(log)
    assert call.argv == ("--root", str(tmp_path / "root"), "state", "a-b")
    assert call.command == "state"
    assert call.exit_code == 1
    assert call.stdio[0].startswith("pipe:")
