"""``kill`` and ``delete``: commands on an existing container that need only its state.

runc 1.1.5's behaviour, command by command:

* ``kill ID [SIG]``: SIGTERM by default; a name (``KILL``, ``SIGUSR1``) or a
  number; refused with ``container not running`` once the init is gone (runc
  checks the init's start time too, so a recycled pid is never signalled).
  ``--all``: every process of the container's cgroup, frozen around the signal
  (``_cgroup_commands.py``); a stopped container is no error there.
* ``delete [--force] ID``: a stopped container's state is removed; a created
  one is killed and removed even without ``--force`` (runc's ``killContainer``);
  a running or paused one only with ``--force``, else ``cannot delete container
  ID that is not stopped: STATUS``.  Then the container's cgroup (``extra["cgroup"]``,
  the plan ``create`` kept) is emptied and removed, before the poststop hooks.
  A missing container: ``container does not exist``, exit 0 with ``--force``; a
  directory without a state file (an aborted create) is removed either way.

Lean like ``state``: no asyncio, no typing at run time.
"""

from __future__ import annotations

import os
import time

from ._errors import ContainerNotFound, OciError
from ._signals import SIGKILL, SIGTERM, parse_signal
from ._state import State, live_status

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ._main import Context

_KILL_WAIT_ROUNDS = 100  # runc's killContainer: 100 x 100 ms for the init to go
_KILL_WAIT_STEP = 0.1


class NotRunning(OciError):
    def __init__(self) -> None:
        super().__init__("container not running")


def signal_init(state: State, number: int) -> None:
    """Signal the init if it is still the process the state file names."""
    if live_status(state) == "stopped":
        raise NotRunning
    try:
        os.kill(state.pid, number)
    except ProcessLookupError:
        raise NotRunning from None


def kill(ctx: Context) -> int:
    """``kill``; the wiring's ``kill --all`` goes through the cgroup (_cgroup_commands)."""
    container_id = ctx.args[0]
    with ctx.state_dir.lock(container_id, exclusive=False):
        state = ctx.state_dir.load(container_id)  # runc: a missing container first
        number = parse_signal(ctx.args[1]) if len(ctx.args) > 1 else SIGTERM
        if ctx.invocation.on("all"):
            signal_all(state, number)
            return 0
        signal_init(state, number)
        if number == SIGKILL and state.status == "paused" and state.extra.get("cgroup"):
            _thaw(state)  # runc: a frozen process dies of SIGKILL only once thawed
    return 0


def _thaw(state: State) -> None:
    from ..cgroups._manager import FsManager

    FsManager(state.extra["cgroup"]).thaw()


def signal_all(state: State, number: int) -> None:
    """``kill --all`` of a container without a cgroup (``_cgroup_commands.signal_all`` has
    the others): its pid namespace's processes; a stopped one is no error (runc 1.1)."""
    if live_status(state) == "stopped":
        return
    for pid in container_pids(state):
        try:  # noqa: SIM105  (contextlib is an import the lean commands do without)
            os.kill(pid, number)
        except ProcessLookupError:
            pass  # gone meanwhile


def container_pids(state: State) -> list[int]:
    """The init and every process in its pid namespace (when it has its own), init first."""
    try:
        namespace = os.stat(f"/proc/{state.pid}/ns/pid")
    except FileNotFoundError:
        return []
    if os.stat("/proc/self/ns/pid").st_ino == namespace.st_ino:
        return [state.pid]  # the host's pid namespace: only the init is known to be its
    pids = [state.pid]
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == state.pid:
            continue
        try:
            if os.stat(f"/proc/{name}/ns/pid").st_ino == namespace.st_ino:
                pids.append(int(name))
        except OSError:
            continue  # exited, or a kernel thread's namespace we cannot read
    return pids


def _kill_and_wait(state: State) -> None:
    """runc's killContainer: SIGKILL, then up to 10 s for the init to be gone.

    runc polls every 100 ms; a pidfd (opened before the signal, so it is the
    init's) reads ready the moment the init exits, reaped or not.
    """
    try:
        pidfd = os.pidfd_open(state.pid)
    except OSError:
        pidfd = -1  # gone already (or no pidfd): the polling below decides
    try:
        try:
            signal_init(state, SIGKILL)
        except NotRunning:
            return
        if state.status == "paused" and state.extra.get("cgroup"):
            _thaw(state)  # runc: a frozen process dies of SIGKILL only once thawed
        if pidfd >= 0:
            import select

            select.select([pidfd], [], [], _KILL_WAIT_ROUNDS * _KILL_WAIT_STEP)
        for _ in range(_KILL_WAIT_ROUNDS):
            if live_status(state) == "stopped":
                return
            time.sleep(_KILL_WAIT_STEP)
    finally:
        if pidfd >= 0:
            os.close(pidfd)
    raise OciError("container init still running")


def delete(ctx: Context) -> int:
    container_id = ctx.args[0]
    force = ctx.invocation.on("force")
    try:
        lock = ctx.state_dir.lock(container_id)
    except ContainerNotFound:
        if force:
            return 0
        raise
    with lock:
        try:
            state = ctx.state_dir.load(container_id)
        except OciError as exc:
            # runc: an aborted create (a directory without a readable state file) goes
            ctx.state_dir.remove(container_id)
            if force:
                return 0
            raise ContainerNotFound(container_id) from exc
        status = live_status(state)
        if status in ("running", "paused", "creating") and not force:
            raise OciError(f"cannot delete container {container_id} that is not stopped: {status}")
        if status != "stopped":
            _kill_and_wait(state)
        destroy(ctx, state)
    return 0


def destroy(ctx: Context, state: State) -> None:
    """runc's destroy of a stopped container, under its lock: the cgroup, the poststop
    hooks (their failures are warnings), the state directory."""
    remove_cgroup(state)
    failures = run_hooks(state, "poststop", "stopped")
    ctx.state_dir.remove(state.id)
    for failure in failures:
        ctx.logger.warning(failure)


def remove_cgroup(state: State) -> None:
    """runc's destroy: kill what is left in the container's cgroup (a daemon that
    escaped a shared pid namespace), then remove its directories."""
    plan = state.extra.get("cgroup")
    if not plan:
        return
    from .._errors import CgroupError
    from ..cgroups._manager import FsManager

    try:
        FsManager(plan, shared=bool(state.extra.get("cgroup_shared"))).destroy()
    except CgroupError as exc:
        raise OciError(f"unable to remove the container's cgroup: {exc}") from exc


def run_hooks(state: State, point: str, status: str, *, stop_at_failure: bool = False) -> list[str]:
    """The parent's hook commands kept in the state file (``extra[point]``), in order.

    The container's state (runtime-spec JSON) on stdin; returns one line per failure
    (the caller decides whether that fails the command, as runc does per hook point).
    ``stop_at_failure``: the hooks after a failed one do not run (runc's RunHooks).
    """
    commands = state.extra.get(point) or []
    if not commands:
        return []
    import subprocess

    from .._leanjson import dumps_indented

    document = dumps_indented(state.spec(status)).encode()
    failures = []
    for command in commands:
        try:
            result = subprocess.run(
                command["args"] or [command["path"]],
                executable=command["path"],
                input=document,
                capture_output=True,
                env=dict(entry.partition("=")[::2] for entry in command["env"]),
                timeout=command["timeout"],
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            failures.append(f"{point} hook {command['field']}: {exc}")
        else:
            if result.returncode != 0:
                output = (result.stderr or result.stdout).decode(errors="replace").strip()
                failures.append(
                    f"{point} hook {command['field']}: exit status {result.returncode}: {output}"
                )
        if failures and stop_at_failure:
            break
    return failures


def release_init(fifo: str, state: State) -> None:
    """runc's exec(): open the exec fifo for reading and take the init's "0".

    Opened non-blocking (so a dead init cannot hang us), then polled in 100 ms
    rounds while the init lives; a fifo that gives nothing means it ran already.
    """
    import select

    try:
        fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise OciError("cannot start an already running container") from None
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        while not poller.poll(100):
            if live_status(state) == "stopped":
                raise OciError("container process is already dead")
        if not os.read(fd, 16):
            raise OciError("cannot start an already running container")
    finally:
        os.close(fd)
    os.unlink(fifo)


def start(ctx: Context) -> int:
    container_id = ctx.args[0]
    with ctx.state_dir.lock(container_id):
        state = ctx.state_dir.load(container_id)
        status = live_status(state)
        if status == "stopped":
            raise OciError("cannot start a container that has stopped")
        if status == "running":
            raise OciError("cannot start an already running container")
        if status != "created":
            raise OciError(f"cannot start a container in the {status} state")
        release_init(ctx.state_dir.path(container_id, EXEC_FIFO), state)
        state.status = "running"
        ctx.state_dir.save(state)
        failures = run_hooks(state, "poststart", "running", stop_at_failure=True)
        if failures:  # runc: a failing poststart hook terminates the container
            _kill_and_wait(state)
            raise OciError("; ".join(failures))
    return 0


EXEC_FIFO = "exec.fifo"
"""``<root>/<id>/exec.fifo``: the init blocks opening it for writing until ``start``."""

HANDLERS = {"kill": kill, "delete": delete, "start": start}
