"""create() and load(): containers in runc's lifecycle from Python, sharing the CLI's state.

``await asyncinit.create(config, ...)`` brings a container up to ``created``: its
init waits on the exec fifo in ``<root>/<id>/`` (the runc CLI's state directory,
docs/cli.md), so ``asyncinit state/start/kill/delete ID`` see it too;
``await container.start()`` releases it (the workload runs at once: no process
to start, unlike ``runc start``).  ``asyncinit.load(id, root=...)`` attaches to a
container another process created (``asyncinit create``, or create() elsewhere):
``state()``, ``start()``, signals, ``wait()``.

The :class:`Record` a handle keeps is the bridge to that directory: the state
file under its lock, the fifo, removal when the handle is closed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .. import _publish
from .._errors import UsageError
from ..config import Spec, spec_to_dict
from ..oci._commands import default_root
from ..oci._control import EXEC_FIFO, release_init
from ..oci._errors import OciError
from ..oci._state import State, live_status, process_start_time
from ..oci._store import StateDir
from ._compile import LaunchOptions
from ._compile_hooks import DEFAULT_HOOK_TIMEOUT
from ._container import Container
from ._create import make_exec_fifo
from ._exec import recorded_spec
from ._hooks import HookPoint, ParentHooks, PythonHooks
from ._spawn import StdioSpec, _load, _Stdio, bring_up, checked_id

if TYPE_CHECKING:
    from ..cgroups import CgroupManager, FsManager

__all__ = ["create", "load"]  # public as asyncinit.NAME


class Record:
    """A container's entry in the state directory, as its handle sees it."""

    def __init__(self, state_dir: StateDir, state: State) -> None:
        self.state_dir = state_dir
        self.state = state

    def release(self) -> None:
        """runc start's core: read the init's "0" from the exec fifo (it then execs)."""
        try:
            release_init(self.state_dir.path(self.state.id, EXEC_FIFO), self.state)
        except OciError as exc:
            raise UsageError(f"container {self.state.id}: {exc}") from None

    def saved(self, status: str) -> None:
        with self.state_dir.lock(self.state.id):
            self.state.status = status
            self.state_dir.save(self.state)

    def remove(self) -> None:
        """The container's directory, gone (the handle is closed: the init was reaped)."""
        try:
            with self.state_dir.lock(self.state.id):
                self.state_dir.remove(self.state.id)
        except OciError:
            pass  # deleted meanwhile (asyncinit delete)


async def create(
    config: Spec | Mapping[str, Any] | str | os.PathLike[str],
    *,
    root: str | os.PathLike[str] | None = None,
    bundle: str | os.PathLike[str] | None = None,
    container_id: str | None = None,
    stdin: StdioSpec = None,
    stdout: StdioSpec = None,
    stderr: StdioSpec = None,
    hooks: PythonHooks | None = None,
    hook_timeout: float | None = DEFAULT_HOOK_TIMEOUT,
    backend: str = "asyncio",
    pass_fds: Sequence[int] = (),
    no_pivot_root: bool = False,
    console_size: tuple[int, int] | None = None,
) -> Container:
    """Bring a container up to ``created``; ``await container.start()`` runs its workload.

    As :func:`asyncinit.spawn` (same arguments, same errors, nothing left on
    failure), stopping where ``runc create`` stops: prestart, createRuntime and
    createContainer hooks have run, the process is prepared, its init blocks on
    the exec fifo.  The container is recorded under ``root`` (default: the runc
    CLI's, ``/run/asyncinit``), so ``asyncinit state|start|kill|delete ID`` and
    :func:`load` reach it.  Closing the handle (``async with``) kills it if it
    still runs, reaps it and removes its record.  The init runs in exec mode
    (a supervising init is not created then started).
    """
    spec, bundle_dir = _load(config, bundle)
    container_id = checked_id(container_id)
    state_dir = StateDir(os.fspath(root) if root is not None else default_root())
    fifo = state_dir.path(container_id, EXEC_FIFO)
    options = LaunchOptions(
        backend=backend,
        pass_fds=len(pass_fds),
        no_pivot_root=no_pivot_root,
        console_size=console_size,
        python_hooks=hooks or PythonHooks(),
        hook_timeout=hook_timeout,
        exec_fifo=fifo,
    )
    state = State(container_id, bundle=os.path.abspath(bundle_dir), rootfs="")
    lock = state_dir.create(state)
    try:
        make_exec_fifo(fifo, spec)
        container = await bring_up(
            spec, bundle_dir, container_id, options, _Stdio(stdin, stdout, stderr), pass_fds
        )
    except BaseException:
        state_dir.remove(container_id)
        lock.release()
        raise
    state.pid, state.pid_start = container.pid, process_start_time(container.pid) or 0
    state.rootfs, state.annotations = container.rootfs, dict(spec.annotations)
    state.extra = recorded_extra(container)
    state.status = "created"
    try:
        state_dir.save(state)
    finally:
        lock.release()
    container.record = Record(state_dir, state)
    return container


def recorded_extra(container: Container) -> dict[str, Any]:
    """What the CLI's ``start``/``delete``/``exec`` (and :func:`load`) need of this one,
    as ``runc create`` records it: the OCI poststart/poststop commands, the cgroup,
    the config as created."""
    hooks = container.hooks
    extra: dict[str, Any] = {
        "poststart": list(hooks.poststart.commands),
        "poststop": list(hooks.poststop.commands),
        "config": spec_to_dict(container.spec),
    }
    if container.cgroup is not None:
        extra["cgroup"] = container.cgroup.plan
        if container.cgroup.shared:
            extra["cgroup_shared"] = True  # delete empties no shared cgroup
        extra.update(recorded_resources(container.cgroup))
    return extra


def recorded_resources(cgroup: CgroupManager | None) -> dict[str, Any]:
    """``{"resources": ...}``: the limits written, as ``runc update`` keeps them in its
    state, so a later ``update`` lays its own over them (cpu period and quota...)."""
    resources = getattr(cgroup, "resources", None)
    if resources is None:
        return {}
    from ..cgroups._load import resources_to_dict

    return {"resources": resources_to_dict(resources)}


def _recorded_cgroup(state: State) -> FsManager | None:
    """The recorded cgroup, removed when the loaded handle's container ends."""
    plan = state.extra.get("cgroup")
    if not plan:
        return None
    from ..cgroups import FsManager

    return FsManager(plan, shared=bool(state.extra.get("cgroup_shared")))


def load(container_id: str, *, root: str | os.PathLike[str] | None = None) -> Container:
    """A handle on a container recorded under ``root`` by another process.

    ``state()``, ``start()`` (of a created one), ``send_signal()``/``kill()`` and
    ``wait()`` work on it; the OCI poststart/poststop hooks are the ones its
    creator recorded.  ``wait()`` returns PID 1's exit code when this process is
    its parent; otherwise the kernel tells only the parent (runc's ``state``
    cannot tell it either) and it returns -1.  Raises :class:`UsageError` for a
    missing or corrupt record, or a container that has stopped.
    """
    state_dir = StateDir(os.fspath(root) if root is not None else default_root())
    try:
        with state_dir.lock(container_id, exclusive=False):
            state = state_dir.load(container_id)
    except (OciError, ValueError) as exc:
        raise UsageError(f"container {container_id}: {exc}") from None
    spec = recorded_spec(state.extra, state.bundle)
    pidfd = os.pidfd_open(state.pid) if state.pid > 0 else -1
    status = live_status(state)
    if status == "stopped":  # checked after the pidfd: it names the init, not a newcomer
        if pidfd >= 0:
            os.close(pidfd)
        raise UsageError(f"container {container_id} has stopped")
    container = Container(
        container_id=container_id,
        spec=spec,
        bundle=state.bundle,
        rootfs=state.rootfs,
        pid=state.pid,
        pidfd=pidfd,
        status=None,
        hooks=_recorded_hooks(state),
        cgroup=_recorded_cgroup(state),
    )
    container.status = status
    container.record = Record(state_dir, state)
    return container


def _recorded_hooks(state: State) -> ParentHooks:
    extra = state.extra
    return ParentHooks(
        prestart=HookPoint("prestart"),
        create_runtime=HookPoint("createRuntime"),
        poststart=HookPoint("poststart", tuple(extra.get("poststart") or ())),
        poststop=HookPoint("poststop", tuple(extra.get("poststop") or ())),
    )


_publish(create, load)
