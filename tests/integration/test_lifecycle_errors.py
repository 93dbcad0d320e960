"""Integration: errors, cancellation and dead or silent parents at every stage of a start."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import pytest

import asyncinit
from asyncinit import ContainerStartError, InitError, PythonHooks, spawn
from asyncinit.config import spec_from_dict
from asyncinit.parent import _compile_hooks
from asyncinit.parent._compile import compile_spec
from asyncinit.sync_pipe import Channel, Kind, PeerGone, socketpair
from tests.support import CHECKOUT
from tests.support.containers import MakeConfig, needs_root, run
from tests.support.hooks import PidNamespace, gone, held_config, hook, script, state_of, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.anyio, needs_root]

REPO = CHECKOUT

#: Where each stage is held: the hook point (or mount command) that blocks.
STAGES = (
    "premount",
    "createRuntime",
    "python-createRuntime",
    "createContainer",
    "startContainer",
    "poststart",
)


def python_holder(log: Path) -> PythonHooks:
    async def hold(container: asyncinit.Container) -> None:
        (log / "python-createRuntime.state").write_text(f'{{"pid": {container.pid}}}')
        (log / "python-createRuntime.ready").write_text("ready")
        await anyio.sleep(600)

    return PythonHooks(create_runtime=[hold])


@pytest.mark.parametrize("stage", STAGES)
async def test_cancelled_spawn_leaves_nothing_behind(
    make_config: MakeConfig, bundle: Path, tmp_path: Path, stage: str
) -> None:
    log = tmp_path / "log"
    config = held_config(make_config, bundle, log, tmp_path, stage)
    returned = False

    async def start() -> None:
        nonlocal returned
        holder = python_holder(log) if stage == "python-createRuntime" else None
        await spawn(config, hooks=holder, container_id="held")
        returned = True

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            tg.start_soon(start)
            while not (log / f"{stage}.ready").exists():
                await anyio.sleep(0.01)
            pid = state_of(log, stage)["pid"]
            namespace = PidNamespace(pid)
            tg.cancel_scope.cancel()
    assert not returned
    assert gone(pid, timeout=0)  # spawn() reaped PID 1 before it let the cancellation out
    try:
        assert namespace.processes() == []
    finally:
        namespace.close()
    if stage in ("createRuntime", "poststart"):  # parent-side hook and its child: killed
        assert all(gone(int(p)) for p in (log / f"{stage}.pids").read_text().split())
    assert (log / "workload-ran").exists() == (stage == "poststart")
    assert state_of(log, "poststop")["id"] == "held"  # the cleanup ran poststop hooks
    # the fork server is still there for the next container
    assert (await run(make_config("true")))[0] == 0


async def test_init_exits_on_eof_while_a_command_runs(
    make_config: MakeConfig, bundle: Path, tmp_path: Path
) -> None:
    """The init itself watches the sync socket: EOF cancels a running premount command.

    Driven by util-linux's unshare, so no fork server is there to kill the init for us.
    """
    log = tmp_path / "log"
    config = held_config(make_config, bundle, log, tmp_path, "premount")
    compiled = compile_spec(spec_from_dict(config), bundle, "eof-test")
    ours, theirs = socketpair()
    process = subprocess.Popen(
        [
            *("unshare", "--fork", "--pid", "--mount", "--uts", "--ipc", "--net"),
            *(sys.executable, "-m", "asyncinit", "init", "--sync-fd", str(theirs.fileno())),
        ],
        pass_fds=[theirs.fileno()],
        cwd=REPO,
    )
    theirs.close()
    try:
        channel = Channel(ours)
        await channel.send(Kind.PLAN, {"plan": compiled.plan, "state": {"id": "eof-test"}})
        await channel.send(Kind.CGROUP)  # no cgroup here: the word alone releases the init
        wait_for(log / "premount.ready")
        channel.close()  # the parent "dies": no message, just EOF
        started = time.monotonic()
        assert process.wait(timeout=10) == 127
        assert time.monotonic() - started < 5
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


async def test_unexpected_init_exception_carries_its_traceback(
    make_config: MakeConfig, bundle: Path
) -> None:
    compiled = compile_spec(spec_from_dict(make_config()), bundle, "broken-plan")
    plan: dict[str, Any] = dict(compiled.plan)
    del plan["mounts"]  # a plan the init cannot have been sent by spawn(): a KeyError inside
    ours, theirs = socketpair()
    process = subprocess.Popen(
        [
            *("unshare", "--fork", "--pid", "--mount"),
            *(sys.executable, "-m", "asyncinit", "init", "--sync-fd", str(theirs.fileno())),
        ],
        pass_fds=[theirs.fileno()],
        cwd=REPO,
    )
    theirs.close()
    channel = Channel(ours)
    try:
        await channel.send(Kind.PLAN, {"plan": plan, "state": {}})
        message = await channel.receive()
        with pytest.raises(PeerGone):
            await channel.receive()
    finally:
        channel.close()
        assert process.wait(timeout=10) == 127
    assert message.kind == Kind.ERROR
    error = InitError.from_fields(message.fields)
    assert error.stage == "create"
    assert "KeyError: 'mounts'" in str(error)
    assert error.init_traceback is not None
    assert "Traceback (most recent call last)" in error.init_traceback
    assert "_lifecycle.py" in error.init_traceback


async def test_silent_parent_makes_the_init_give_up(
    make_config: MakeConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A parent that stops answering (its event loop blocked) cannot keep the init for ever."""
    monkeypatch.setattr(_compile_hooks, "REPLY_MARGIN", 0.5)
    waited = 0.0

    async def blocks_the_event_loop(container: asyncinit.Container) -> None:
        nonlocal waited
        started = time.monotonic()
        gone(container.pid, timeout=20)  # time.sleep: nothing in this process can answer
        waited = time.monotonic() - started

    with pytest.raises(InitError) as caught:
        await spawn(
            make_config(),
            hooks=PythonHooks(create_runtime=[blocks_the_event_loop]),
            hook_timeout=1,
        )
    # 0.5 s margin + 1 s for the one Python hook, then the init reported and exited
    assert 1.4 < waited < 10
    assert caught.value.stage == "hooks"
    assert "the parent did not answer with 'hooks_done' within 1.5s" in str(caught.value)


async def test_unbounded_hooks_leave_the_wait_unbounded(make_config: MakeConfig) -> None:
    config = make_config()
    config["hooks"] = {"prestart": [{"path": "/bin/true", "timeout": 7}]}
    plan = compile_spec(spec_from_dict(config), ".", "x").plan
    assert plan["reply_timeouts"] == {
        "hooks_done": _compile_hooks.REPLY_MARGIN + 7,
        "run": _compile_hooks.REPLY_MARGIN,
        "mount_fd": _compile_hooks.REPLY_MARGIN,
        "cgroup": _compile_hooks.REPLY_MARGIN,
    }
    config["hooks"]["createRuntime"] = [{"path": "/bin/true"}]
    plan = compile_spec(spec_from_dict(config), ".", "x").plan
    assert plan["reply_timeouts"]["hooks_done"] is None


async def test_the_hooks_round_trip_only_when_the_parent_has_work(
    make_config: MakeConfig,
) -> None:
    """No prestart/createRuntime hook and no veth: the init does not stop to ask."""
    config = make_config()
    assert not compile_spec(spec_from_dict(config), ".", "x").plan["parent_hooks"]
    for point in ("prestart", "createRuntime"):
        config["hooks"] = {point: [{"path": "/bin/true"}]}
        assert compile_spec(spec_from_dict(config), ".", "x").plan["parent_hooks"], point
    config["hooks"] = {"createContainer": [{"path": "/bin/true"}], "poststop": []}
    assert not compile_spec(spec_from_dict(config), ".", "x").plan["parent_hooks"]


async def test_python_create_runtime_hooks_still_get_their_round_trip(
    make_config: MakeConfig,
) -> None:
    ran: list[int] = []

    async def record(container: asyncinit.Container) -> None:
        ran.append(container.pid)

    async with await spawn(make_config(), hooks=PythonHooks(create_runtime=[record])) as c:
        assert await c.wait() == 0
    assert ran == [c.pid]


async def test_init_killed_by_a_signal_is_reported_as_such(make_config: MakeConfig) -> None:
    async def kill_init(container: asyncinit.Container) -> None:
        os.kill(container.pid, signal.SIGKILL)
        while not gone(container.pid, timeout=0):
            await anyio.sleep(0.01)

    with anyio.fail_after(20):
        with pytest.raises(ContainerStartError) as caught:
            await spawn(make_config(), hooks=PythonHooks(create_runtime=[kill_init]))
    assert str(caught.value) == "the init was killed by SIGKILL before the workload was executed"


async def test_failure_notes_carry_poststop_warnings(
    make_config: MakeConfig, tmp_path: Path
) -> None:
    config = make_config("/no/such/binary")
    config["hooks"] = {"poststop": [hook(script(tmp_path / "bad", "#!/bin/sh\nexit 9\n"))]}
    with pytest.raises(InitError) as caught:
        await spawn(config)
    assert caught.value.stage == "exec"
    assert any("poststop hook 0" in note for note in caught.value.__notes__)


async def test_rlimits_round_trip_only_in_a_user_namespace(make_config: MakeConfig) -> None:
    """Outside a user namespace the init may set process.rlimits as well as the parent."""
    config = make_config()
    assert not compile_spec(spec_from_dict(config), ".", "x").plan["parent_rlimits"]
    config["linux"]["namespaces"].append({"type": "user"})
    config["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    config["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    assert compile_spec(spec_from_dict(config), ".", "x").plan["parent_rlimits"]
