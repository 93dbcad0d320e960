"""``pause``, ``resume``, ``update``, ``events``, ``ps`` and ``kill --all``: runc 1.1.5's
commands on a container's cgroup (the plan ``create`` kept in ``extra["cgroup"]``).

* ``pause ID``: a created or running container is frozen and reads ``paused``;
  anything else: ``container not running``.  ``resume ID``: a paused one is
  thawed and reads ``created`` again while its exec fifo waits (runc looks at
  the fifo too), else ``running``; anything else: ``container not paused``.
* ``update ID``: the flags or ``--resources`` (``_update.py``) laid over the
  resources kept in the state (``extra["resources"]``), written, and kept for
  the next update; a stopped container: ``container not running``.  A failed
  write puts the previous values back, as runc does.
* ``events [--stats] [--interval D] ID``: ``types.Event`` JSON lines
  (``_runc_stats.py``): one ``stats`` event with ``--stats``; else a ``stats``
  event every interval and an ``oom`` event for each OOM kill, until the
  container's init exits.
* ``ps [-f table|json] ID [ps options]``: the cgroup's pids, or ``ps``'s table
  (``-ef`` by default) cut to those pids.
* ``kill --all ID [SIG]``: the cgroup frozen, every process in it signalled,
  thawed (which thaws a paused container too: runc 1.1.5 does the same).
"""

from __future__ import annotations

import os

from ._control import EXEC_FIFO, container_pids
from ._control import kill as kill_one
from ._control import signal_all as signal_namespace
from ._errors import OciError
from ._signals import SIGTERM, parse_signal
from ._state import live_status

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ..cgroups._manager import FsManager
    from ._main import Context
    from ._state import State

NOT_RUNNING = "container not running"


def manager_of(state: State) -> FsManager | None:
    """The container's cgroup manager, with the resources kept so far (None: no cgroup)."""
    plan = state.extra.get("cgroup")
    if not plan:
        return None
    from ..cgroups._manager import FsManager

    resources = None
    if state.extra.get("resources") is not None:
        from ..cgroups._load import resources_from_dict

        resources = resources_from_dict(state.extra["resources"], path="state.resources")
    return FsManager(plan, resources, shared=bool(state.extra.get("cgroup_shared")))


def _cgroup(state: State) -> FsManager:
    manager = manager_of(state)
    if manager is None:
        raise OciError(f"container {state.id} has no cgroup")
    return manager


def unpaused_status(ctx: Context, state: State) -> str:
    """What a thawed container is: ``created`` while its exec fifo waits, else ``running``."""
    return "created" if os.path.exists(ctx.state_dir.path(state.id, EXEC_FIFO)) else "running"


def pause(ctx: Context) -> int:
    with ctx.state_dir.lock(ctx.args[0]):
        state = ctx.state_dir.load(ctx.args[0])
        if live_status(state) not in ("created", "running"):
            raise OciError(NOT_RUNNING)
        _cgroup(state).freeze()
        state.status = "paused"
        ctx.state_dir.save(state)
    return 0


def resume(ctx: Context) -> int:
    with ctx.state_dir.lock(ctx.args[0]):
        state = ctx.state_dir.load(ctx.args[0])
        if live_status(state) != "paused":
            raise OciError("container not paused")
        _cgroup(state).thaw()
        state.status = unpaused_status(ctx, state)
        ctx.state_dir.save(state)
    return 0


def update(ctx: Context) -> int:
    from ..cgroups._load import resources_from_dict, resources_to_dict
    from ..cgroups._resources import Resources
    from ._update import changes

    with ctx.state_dir.lock(ctx.args[0]):
        state = ctx.state_dir.load(ctx.args[0])
        requested = changes(ctx.invocation, ctx.logger)
        if live_status(state) == "stopped":
            raise OciError(NOT_RUNNING)
        manager = _cgroup(state)
        _unlimited_swap_with_memory(requested, manager)
        previous = manager.resources
        try:
            manager.update(resources_from_dict(requested, path="resources"))
        except BaseException:
            if previous is not None:  # runc: "Set configs back"
                try:
                    manager.resources = previous
                    manager.update(Resources())
                except Exception as exc:  # the first error is the one to report
                    ctx.logger.warning(f"cannot restore the previous resources: {exc}")
            raise
        assert manager.resources is not None
        state.extra["resources"] = resources_to_dict(manager.resources)
        ctx.state_dir.save(state)
    return 0


def _unlimited_swap_with_memory(requested: dict[str, Any], manager: FsManager) -> None:
    """runc's setMemoryAndSwap: ``--memory -1`` without ``--memory-swap`` lifts the swap
    limit too on v1 (where the kernel has it), else the kept one refuses the change."""
    memory = requested.get("memory") or {}
    if memory.get("limit") != -1 or "swap" in memory or manager.version != 1:
        return
    if os.path.exists(os.path.join(manager.directory("memory"), "memory.memsw.limit_in_bytes")):
        requested["memory"] = {**memory, "swap": -1}


def events(ctx: Context) -> int:
    from ._runc_stats import event_line, runc_stats
    from ._update import parse_duration

    container_id = ctx.args[0]
    with ctx.state_dir.lock(container_id, exclusive=False):
        state = ctx.state_dir.load(container_id)
    interval = parse_duration(ctx.invocation.text("interval"), "interval")
    if interval <= 0:
        raise OciError("duration interval must be greater than 0")
    if live_status(state) == "stopped":
        raise OciError(f"container with id {container_id} is not running")
    manager = _cgroup(state)
    if ctx.invocation.on("stats"):
        ctx.write(event_line("stats", container_id, runc_stats(manager.stats(), manager.version)))
        return 0
    _stream(ctx, state, manager, interval)
    return 0


def _stream(ctx: Context, state: State, manager: FsManager, interval: float) -> None:
    """Stats every ``interval``, ``oom`` as they happen, until the init exits."""
    import select
    import time

    from .._errors import CgroupError
    from ._runc_stats import event_line, runc_stats

    try:
        pidfd = os.pidfd_open(state.pid)
    except ProcessLookupError:
        return
    try:
        with manager.oom_events() as oom:
            poller = select.poll()
            poller.register(pidfd, select.POLLIN)
            poller.register(oom.fileno(), select.POLLIN)
            due = time.monotonic() + interval
            while True:
                ready = {fd for fd, _ in poller.poll(max(due - time.monotonic(), 0) * 1000)}
                if oom.fileno() in ready:
                    for _ in range(oom.read()):
                        ctx.write(event_line("oom", state.id))
                if pidfd in ready or oom.closed or live_status(state) == "stopped":
                    return
                if time.monotonic() >= due:
                    due += interval
                    try:
                        stats = runc_stats(manager.stats(), manager.version)
                    except (CgroupError, OSError) as exc:
                        ctx.logger.error(str(exc))  # runc: logged, the stream goes on
                        continue
                    ctx.write(event_line("stats", state.id, stats))
    finally:
        os.close(pidfd)


def ps(ctx: Context) -> int:
    from ._format import check_format, ps_argv, ps_filter, ps_json

    container_id, *ps_args = ctx.args
    with ctx.state_dir.lock(container_id, exclusive=False):
        state = ctx.state_dir.load(container_id)
    pids = processes(state)
    fmt = ctx.invocation.text("format")
    check_format(fmt)
    if fmt == "json":
        ctx.write(ps_json(pids) if pids else "null\n")  # Go's nil slice
        return 0
    import subprocess

    result = subprocess.run(ps_argv(ps_args), capture_output=True, text=True, check=False)
    output = result.stdout + result.stderr
    if result.returncode != 0:
        raise OciError(f"exit status {result.returncode}: {output}")
    try:
        ctx.write(ps_filter(output, pids))
    except ValueError as exc:
        raise OciError(str(exc)) from None
    return 0


def processes(state: State) -> list[int]:
    """runc's ``Processes``: every pid of the cgroup (none once it is gone)."""
    manager = manager_of(state)
    if manager is None:
        return container_pids(state) if live_status(state) != "stopped" else []
    if not manager.exists():
        return []
    return manager.pids()


def kill(ctx: Context) -> int:
    """``kill``: ``--all`` here, through the cgroup; the init alone in ``_control``."""
    if not ctx.invocation.on("all"):
        return kill_one(ctx)
    container_id = ctx.args[0]
    with ctx.state_dir.lock(container_id):  # exclusive: it may thaw a paused container
        state = ctx.state_dir.load(container_id)  # runc: a missing container first
        number = parse_signal(ctx.args[1]) if len(ctx.args) > 1 else SIGTERM
        signal_all(ctx, state, number)
    return 0


def signal_all(ctx: Context, state: State, number: int) -> None:
    """``kill --all`` through the cgroup (the caller holds the container's lock)."""
    manager = manager_of(state)
    if manager is None:
        signal_namespace(state, number)
        return
    if not manager.exists():
        return  # runc: stopped and its cgroup gone is no error
    manager.kill_all(number)
    if state.status == "paused" and live_status(state) == "paused":
        state.status = unpaused_status(ctx, state)  # the freeze around the signal thawed it
        ctx.state_dir.save(state)


HANDLERS = {
    "kill": kill,
    "pause": pause,
    "resume": resume,
    "update": update,
    "events": events,
    "ps": ps,
}
