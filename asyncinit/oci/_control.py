"""``kill`` and ``delete``: commands on an existing container that need only its state.

runc 1.1.5's behaviour, command by command:

* ``kill ID [SIG]``: SIGTERM by default; a name (``KILL``, ``SIGUSR1``) or a
  number; refused with ``container not running`` once the init is gone (runc
  checks the init's start time too, so a recycled pid is never signalled).
  ``--all`` needs the container's cgroup: refused until the cgroup wiring lands.
* ``delete [--force] ID``: a stopped container's state is removed; a created
  one is killed and removed even without ``--force`` (runc's ``killContainer``);
  a running or paused one only with ``--force``, else ``cannot delete container
  ID that is not stopped: STATUS``.  A missing container: ``container does not
  exist``, exit 0 with ``--force``; a directory without a state file (an aborted
  create) is removed either way.

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
    container_id = ctx.args[0]
    with ctx.state_dir.lock(container_id, exclusive=False):
        state = ctx.state_dir.load(container_id)  # runc: a missing container first
        number = parse_signal(ctx.args[1]) if len(ctx.args) > 1 else SIGTERM
        if ctx.invocation.on("all"):
            raise OciError("kill --all: needs the container's cgroup (not wired in asyncinit yet)")
        signal_init(state, number)
    return 0


def _kill_and_wait(state: State) -> None:
    """runc's killContainer: SIGKILL, then up to 10 s for the init to be gone."""
    try:
        signal_init(state, SIGKILL)
    except NotRunning:
        return
    for _ in range(_KILL_WAIT_ROUNDS):
        if live_status(state) == "stopped":
            return
        time.sleep(_KILL_WAIT_STEP)
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
        ctx.state_dir.remove(container_id)
    return 0


HANDLERS = {"kill": kill, "delete": delete}
