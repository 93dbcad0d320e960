"""The parent's cgroup lifecycle: an interface, and its cgroupfs driver.

``CgroupManager`` is what the runtime calls (apply/enter, update, freeze/thaw,
kill_all, destroy, stats, pids, OOM events); ``FsManager`` implements it by
writing cgroupfs files directly, as runc's fs and fs2 managers do.  A systemd
driver would implement the same interface over D-Bus; there is no systemd on
these machines, so ``compute_plan(systemd=True)`` refuses instead of faking one.

All methods are synchronous and block only briefly (a freeze or a kill waits
for the kernel, on an fd where there is one); call them from a worker thread
in async code.  Waits never spin: v2 waits on inotify of ``cgroup.events``, the
v1 kill waits on pidfds.
"""

from __future__ import annotations

import abc
import contextlib
import errno
import os
import posixpath
import select
import signal
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Literal

from .._errors import CgroupError
from .._syscalls._fds import IN_MODIFY, inotify_add_watch, inotify_init, pidfd_send_signal
from . import _steps
from ._events import OomEvents
from ._plan import CgroupPlan

if TYPE_CHECKING:  # imported when used: `delete` and the fork server need no attrs
    from ._resources import Resources

FreezerState = Literal["thawed", "frozen", "freezing"]
_WAIT_SECONDS = 10.0


class CgroupManager(abc.ABC):
    """What the runtime needs from a cgroup driver."""

    plan: CgroupPlan
    #: joined, not created: processes of others may be in it
    shared: bool

    @abc.abstractmethod
    def apply(self, pid: int | None = None) -> list[str]:
        """Create the cgroup and set every limit; then move ``pid`` in when given.

        Returns warnings (rootless hierarchies that could not be created)."""

    @abc.abstractmethod
    def directory(self, controller: str = "") -> str:
        """The cgroup directory of ``controller`` (v2: the one directory)."""

    @abc.abstractmethod
    def enter(self, pid: int) -> None:
        """Move ``pid`` (0: the caller) into the cgroup."""

    @abc.abstractmethod
    def update(self, resources: Resources) -> None:
        """Lay ``resources`` over the current ones and write them (``runc update``)."""

    @abc.abstractmethod
    def freeze(self) -> None: ...

    @abc.abstractmethod
    def thaw(self) -> None: ...

    @abc.abstractmethod
    def freezer_state(self) -> FreezerState: ...

    @abc.abstractmethod
    def kill_all(self, signum: int = signal.SIGKILL) -> None:
        """Signal every process in the cgroup; with SIGKILL, wait until none is left."""

    @abc.abstractmethod
    def destroy(self) -> None:
        """Kill whatever is left, then remove the cgroup directories."""

    @abc.abstractmethod
    def pids(self) -> list[int]:
        """Every process in the cgroup and its descendants."""

    @abc.abstractmethod
    def stats(self) -> dict[str, Any]: ...

    @abc.abstractmethod
    def oom_events(self) -> OomEvents: ...

    @abc.abstractmethod
    def exists(self) -> bool: ...


class FsManager(CgroupManager):
    """cgroupfs driver for v1 and v2, carrying out a ``CgroupPlan``."""

    def __init__(
        self, plan: CgroupPlan, resources: Resources | None = None, *, shared: bool = False
    ) -> None:
        self.plan = plan
        #: the limits written so far (None: none), under which ``update`` lays its own
        self.resources = resources
        self.skipped: list[str] = []
        #: the cgroup held processes before (runc 1.1.5 joins it): not ours to kill
        self.shared = shared

    @property
    def version(self) -> int:
        return self.plan["version"]

    def directory(self, controller: str = "") -> str:
        """The cgroup directory of ``controller`` (v2: the one directory)."""
        for hierarchy in self.plan["hierarchies"]:
            if self.version == 2 or controller in hierarchy["controllers"]:
                return hierarchy["directory"]
        raise CgroupError(
            f"no {controller} cgroup hierarchy on this host", errno=errno.ENOENT, operation="lookup"
        )

    def apply(self, pid: int | None = None) -> list[str]:
        created = _steps.create(self.plan)
        self.skipped = created["skipped"]
        self.shared = bool(created["shared"])
        try:
            _steps.apply_limits(self.plan, self.skipped)
            if pid is not None:
                _steps.enter(self.plan, pid, self.skipped)
        except BaseException:
            _steps.remove_directories(created["created"][::-1])
            raise
        return created["warnings"]

    def enter(self, pid: int) -> None:
        _steps.enter(self.plan, pid, self.skipped)

    def open_directory(self) -> int:
        """v2: an fd of the cgroup for ``_syscalls._clone.fork_into_cgroup`` (no migration)."""
        return _steps.open_directory(self.plan)

    def update(self, resources: Resources) -> None:
        from ._compute import update_plan
        from ._resources import Resources, merge

        merged = merge(self.resources or Resources(), resources)
        plan = update_plan(self.plan, merged)
        for hierarchy in plan["hierarchies"]:
            if hierarchy["directory"] not in self.skipped:
                _steps.write_all(hierarchy["directory"], hierarchy["writes"])
        self.resources = merged

    # -- freezer ----------------------------------------------------------------

    def freeze(self) -> None:
        self._set_frozen(True)

    def thaw(self) -> None:
        self._set_frozen(False)

    def freezer_state(self) -> FreezerState:
        if self.version == 2:
            frozen = _events(self.directory()).get("frozen") == 1
            wanted = _steps.read_file(self.directory(), "cgroup.freeze").strip() == "1"
            return "frozen" if frozen else "freezing" if wanted else "thawed"
        state = _steps.read_file(self.directory("freezer"), "freezer.state").strip()
        return {"FROZEN": "frozen", "FREEZING": "freezing"}.get(state, "thawed")  # type: ignore[return-value]

    def _set_frozen(self, frozen: bool) -> None:
        if self.version == 2:
            directory = self.directory()
            with _watch(directory, "cgroup.events") as fd:
                _write(directory, "cgroup.freeze", "1" if frozen else "0", "freeze")
                _wait_for(fd, lambda: (_events(directory).get("frozen") == 1) == frozen, directory)
            return
        directory = self.directory("freezer")
        target = "FROZEN" if frozen else "THAWED"
        deadline = time.monotonic() + _WAIT_SECONDS
        delay = 0.0005
        while True:  # v1 has no notification: re-check with a short, growing pause (runc)
            _write(directory, "freezer.state", target, "freeze")
            if _steps.read_file(directory, "freezer.state").strip() == target:
                return
            if time.monotonic() > deadline:
                raise CgroupError(
                    "the cgroup did not freeze in time",
                    path=directory,
                    errno=errno.ETIMEDOUT,
                    operation="freeze",
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.01)

    # -- processes ----------------------------------------------------------------

    def _pid_directory(self) -> str:
        if self.version == 2:
            return self.directory()
        for controller in ("freezer", "pids", "devices", "memory", "cpu"):
            with contextlib.suppress(CgroupError):
                return self.directory(controller)
        return self.plan["hierarchies"][0]["directory"]

    def pids(self) -> list[int]:
        found: list[int] = []
        for path, _dirs, files in os.walk(self._pid_directory()):
            if "cgroup.procs" in files:
                with contextlib.suppress(FileNotFoundError):
                    found += [int(p) for p in _steps.read_file(path, "cgroup.procs").split()]
        return found

    def kill_all(self, signum: int = signal.SIGKILL) -> None:
        directory = self._pid_directory()
        if not os.path.isdir(directory):
            return
        if (
            self.version == 2
            and signum == signal.SIGKILL
            and os.path.exists(posixpath.join(directory, "cgroup.kill"))
        ):
            with _watch(directory, "cgroup.events") as fd:
                _write(directory, "cgroup.kill", "1", "kill")
                _wait_for(fd, lambda: _events(directory).get("populated") == 0, directory)
            return
        can_freeze = self.version == 2 or any(
            "freezer" in h["controllers"] for h in self.plan["hierarchies"]
        )
        for _ in range(100):  # freeze, signal every pid, thaw: nothing forks or exits in between
            if can_freeze:
                self.freeze()
            pidfds = []
            try:
                for pid in self.pids():
                    with contextlib.suppress(ProcessLookupError):
                        pidfds.append(os.pidfd_open(pid))
                for pidfd in pidfds:
                    with contextlib.suppress(ProcessLookupError):
                        pidfd_send_signal(pidfd, signum)
            finally:
                if can_freeze:
                    self.thaw()
            try:
                if signum != signal.SIGKILL or not pidfds:
                    return
                _wait_pidfds(pidfds, directory)
            finally:
                for pidfd in pidfds:
                    os.close(pidfd)
            if can_freeze or not self.pids():
                return  # frozen: nobody forked in between; else loop until empty
        raise CgroupError(
            "processes of the cgroup keep forking faster than they are killed (no freezer)",
            path=directory,
            errno=errno.EAGAIN,
            operation="kill",
        )

    def destroy(self) -> None:
        """A shared cgroup (it held processes before the container) keeps its other
        processes: it is removed only if they are gone; else it stays, silently."""
        if self.shared:
            with contextlib.suppress(CgroupError):
                _steps.remove(self.plan)
            return
        if not self._removed_if_empty() and self.exists():
            self.kill_all()
        _steps.remove(self.plan)

    def _removed_if_empty(self) -> bool:
        """One rmdir of the directory that lists the processes: the kernel refuses it
        (EBUSY) while a process or a child cgroup is in it, so once it is gone nothing
        of the container is left to kill (the usual end: PID 1 took everything with it)."""
        try:
            os.rmdir(self._pid_directory())
        except OSError:
            return False
        return True

    def exists(self) -> bool:
        return any(os.path.isdir(h["directory"]) for h in self.plan["hierarchies"])

    # -- accounting -----------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        from ._stats import stats_v1, stats_v2

        if self.version == 2:
            return stats_v2(self.directory())
        directories = {
            c: h["directory"] for h in self.plan["hierarchies"] for c in h["controllers"]
        }
        return stats_v1(directories)

    def oom_events(self) -> OomEvents:
        return OomEvents(self.directory("memory"), self.version)


def _write(directory: str, name: str, value: str, operation: str) -> None:
    try:
        _steps.write_file(directory, name, value)
    except OSError as exc:
        raise CgroupError(
            f"cannot write {value!r} to {name}: {exc.strerror}",
            path=posixpath.join(directory, name),
            errno=exc.errno or 0,
            operation=operation,
        ) from exc


def _events(directory: str) -> dict[str, int]:
    values = {}
    for line in _steps.read_file(directory, "cgroup.events").splitlines():
        key, _, value = line.partition(" ")
        values[key] = int(value)
    return values


@contextlib.contextmanager
def _watch(directory: str, name: str) -> Iterator[int]:
    fd = inotify_init()
    try:
        inotify_add_watch(fd, posixpath.join(directory, name), IN_MODIFY)
        yield fd
    finally:
        os.close(fd)


def _wait_for(fd: int, done: Callable[[], bool], directory: str) -> None:
    """Block on the inotify ``fd`` until ``done()`` holds (checked before each wait)."""
    deadline = time.monotonic() + _WAIT_SECONDS
    while not done():
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise CgroupError(
                "the cgroup did not reach the state asked for in time",
                path=directory,
                errno=errno.ETIMEDOUT,
                operation="wait",
            )
        with contextlib.suppress(BlockingIOError):
            os.read(fd, 4096)


def _wait_pidfds(pidfds: list[int], directory: str) -> None:
    poller = select.poll()
    for pidfd in pidfds:
        poller.register(pidfd, select.POLLIN)
    left = set(pidfds)
    deadline = time.monotonic() + _WAIT_SECONDS
    while left:
        timeout = deadline - time.monotonic()
        events = poller.poll(max(timeout, 0) * 1000) if timeout > 0 else []
        if not events:
            raise CgroupError(
                "processes of the cgroup did not die in time",
                path=directory,
                errno=errno.ETIMEDOUT,
                operation="kill",
            )
        for fd, _ in events:
            poller.unregister(fd)
            left.discard(fd)
