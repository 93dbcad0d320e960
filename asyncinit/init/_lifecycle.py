"""The init's asynchronous orchestration: the order of steps and the talk with the parent.

Each rootfs or devices step is a plain synchronous function run in the init's one
worker thread (:mod:`._steps_thread`): pivot_root, chdir and umask act on the
fs_struct every thread shares, so two of them must never overlap.  Commands
(premount/postmount, createContainer and startContainer hooks) run as
subprocesses while the loop stays responsive.

The parent is heard through an :class:`~._inbox.Inbox`: its end of file cancels
whatever runs, and each wait for a reply is bounded (``reply_timeouts``).
"""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar, TypeVarTuple

from .._commands import run_command
from .._errors import CommandError, StepError
from .._fs._procfs import open_private_procfs
from .._plan import CommandPlan, InitPlan, MountPlan
from .._syscalls._process import join_session_keyring
from ..devices._nodes import create_devices
from ..devices._null import reopen_dev_null
from ..devices._symlinks import setup_dev_symlinks
from ..rootfs._finalize import finalize_rootfs, make_cwd, set_names
from ..rootfs._jail import chroot_into, ms_move_root, pivot_into, reapply_root_propagation
from ..rootfs._masks import mask_paths, readonly_paths
from ..rootfs._mount import MountContext, mount_to_rootfs, open_root, prepare_root
from ..rootfs._sysctl import write_sysctls
from ..sync_pipe import Channel, Kind
from ._inbox import Inbox, StageFailed
from ._process import (
    Prepared,
    apply_limits,
    before_jail,
    check_executable,
    load_seccomp,
    prepare_process,
)
from ._steps_thread import StepsThread
from ._terminal import Terminal

T = TypeVar("T")
Ts = TypeVarTuple("Ts")


def _join_session_keyring(container_id: str) -> None:
    """runc's: a fresh session keyring, not the caller's (ENOSYS and EPERM ignored, as runc)."""
    try:
        join_session_keyring(f"_ses.{container_id}")
    except OSError as exc:
        if exc.errno not in (errno.ENOSYS, errno.EPERM):
            raise


def _run_steps(steps: list[tuple[str, str | None, Callable[[], object]]]) -> None:
    """Run queued steps in order, in the worker thread; the first failure names its stage."""
    for stage, field, call in steps:
        try:
            call()
        except Exception as exc:
            raise StageFailed(stage, field, exc) from exc


class Lifecycle:
    """One container start, from the plan to the moment the workload may be executed."""

    def __init__(self, channel: Channel, plan: InitPlan, state: dict[str, Any]) -> None:
        self.channel = channel
        self.plan = plan
        self.state = state
        self.steps_thread = StepsThread()
        self.rootfd = -1
        self.procfd = -1
        self._pending: list[tuple[str, str | None, Callable[[], object]]] = []
        self.terminal: Terminal | None = None
        self.exec_fifo = -1
        self._mounts: MountContext | None = None
        #: the workload's executable and environment, once prepare_process ran
        self.prepared: Prepared | None = None
        self.inbox = Inbox(channel, plan["reply_timeouts"])

    async def run(self) -> Prepared:
        """:meth:`create` while the inbox's reader task watches the parent."""
        await self.inbox.run(self.create)
        assert self.prepared is not None
        return self.prepared

    async def step(
        self, stage: str, fn: Callable[[*Ts], T], *args: *Ts, field: str | None = None
    ) -> T:
        try:
            return await self.steps_thread.run(fn, *args)
        except Exception as exc:
            raise StageFailed(stage, field, exc) from exc

    async def in_cgroup(self) -> None:
        """Before the first fork or exec: nothing of the container runs outside its cgroup."""
        if self.plan["await_cgroup"]:
            await self.inbox.cgroup_entered()

    async def run_command(self, stage: str, command: CommandPlan, status: str) -> None:
        await self.in_cgroup()
        state = json.dumps({**self.state, "status": status}).encode()
        try:
            await run_command(command, state)
        except CommandError as exc:
            raise StageFailed(stage, command["field"], exc) from exc

    async def mount_source(self, index: int) -> int:
        """Ask the parent for mounts[index]'s detached source mount (runc's procMountPlease)."""
        await self.channel.send(Kind.MOUNT_PLEASE, {"index": index})
        message = await self.inbox.reply("mount", Kind.MOUNT_FD)
        if len(message.fds) != 1:
            for fd in message.fds:
                os.close(fd)
            raise StageFailed(
                "mount",
                f"mounts[{index}]",
                StepError(f"expected one mount fd from the parent, got {len(message.fds)}"),
            )
        return message.fds[0]

    def later(self, stage: str, call: Callable[[], object], field: str | None = None) -> None:
        """Queue a synchronous step; :meth:`flush` runs the queue in one worker thread.

        Consecutive steps with nothing asynchronous between them share one thread
        hop: each hop costs a queue round trip and two wake-ups, every container.
        """
        self._pending.append((stage, field, call))

    async def flush(self) -> None:
        steps, self._pending = self._pending, []
        if steps:
            await self.steps_thread.run(_run_steps, steps)

    def _prepare_root(self) -> None:
        plan = self.plan
        if plan["mount_namespace"]:
            self.rootfd = prepare_root(plan["rootfs"], plan["root_propagation"])
        else:  # the parent refused every mount: with no namespace they would hit the host
            self.rootfd = open_root(plan["rootfs"])
        self._mounts = MountContext(
            self.rootfd,
            plan["rootfs"],
            plan["user_namespace"],
            plan["cgroup_namespace"],
            plan["cgroup2_path"],
            plan["rootless_cgroups"],
        )

    def _open_procfs(self) -> None:
        # Opened while the host's /proc is still whole (see _fs/_procfs), used after the jail.
        self.procfd = open_private_procfs()

    def _mount(self, m: MountPlan, source_fd: int | None) -> None:
        assert self._mounts is not None
        mount_to_rootfs(self._mounts, m, source_fd)

    def _open_terminal(self) -> None:
        # /dev/console only on the /dev we built: never create files in a bound /dev.
        self.terminal = Terminal.open(self.rootfd, console=self.plan["setup_dev"])

    def _write_sysctls(self) -> None:
        try:
            write_sysctls(self.procfd, self.plan["sysctl"])
        finally:
            if self.plan["process"]["apparmor_profile"] is None:  # else kept for the exec
                os.close(self.procfd)
                self.procfd = -1

    async def create(self) -> None:
        """Everything before the workload is executed, in runc's order (docs/architecture.md)."""
        plan = self.plan
        if plan["exec_fifo"] is not None:  # while the host's path is still in reach
            self.exec_fifo = os.open(plan["exec_fifo"], os.O_PATH | os.O_CLOEXEC)
        await self.prepare_rootfs()
        if plan["process"]["terminal"]:
            self.later("console", self._open_terminal, "process.terminal")
        self.later("cwd", lambda: make_cwd(self.rootfd, plan["process"]["cwd"]), "process.cwd")
        self.finalize_rootfs()
        await self.flush()
        os.close(self.rootfd)
        self.rootfd = -1
        await self.finish_process()

    async def prepare_rootfs(self) -> None:
        """runc's prepareRootfs: the root, the mounts, /dev, the hooks, the jail.

        Ends after reOpenDevNull, as runc's does (some steps may still be queued).
        """
        plan = self.plan
        self.later("prepare_root", self._prepare_root, "root.path")
        if plan["sysctl"]:
            self.later("sysctl", self._open_procfs, "linux.sysctl")
        elif plan["process"]["apparmor_profile"] is not None:
            self.later("apparmor", self._open_procfs, "process.apparmorProfile")
        await self.mount_all()
        if plan["setup_dev"]:
            self.later(
                "devices",
                lambda: create_devices(self.rootfd, plan["devices"], bind=plan["user_namespace"]),
                "linux.devices",
            )
            self.later("devices", lambda: setup_dev_symlinks(self.rootfd))
        if plan["new_network"]:
            from ..network._loopback import loopback_up

            self.later("network", loopback_up)
        await self.flush()
        if plan["parent_hooks"]:
            # The parent runs prestart and createRuntime hooks now: the old root is
            # still visible and the mounts are in place (runc's procHooks).
            await self.channel.send(Kind.HOOKS)
            await self.inbox.reply("hooks", Kind.HOOKS_DONE)
        for command in plan["create_container_hooks"]:
            await self.run_command("createContainer", command, "creating")
        # What needs the host's /proc: the container may have no procfs of its own.
        self.later("process", partial(before_jail, plan["process"]), "process")
        self.jail()
        if plan["setup_dev"]:
            self.later("reopen_dev_null", lambda: reopen_dev_null(self.rootfd))

    async def mount_all(self) -> None:
        """Each mount (runc's mountToRootfs), between its premount and postmount commands."""
        for index, m in enumerate(self.plan["mounts"]):
            if m["premount"] or m["idmap"]:
                await self.flush()
            for command in m["premount"]:
                await self.run_command("premount", command, "creating")
            if m["idmap"]:
                source_fd = await self.mount_source(index)
                try:
                    await self.step("mount", self._mount, m, source_fd, field=m["field"])
                finally:
                    os.close(source_fd)
            else:
                self.later("mount", partial(self._mount, m, None), m["field"])
            if m["postmount"]:
                await self.flush()
            for command in m["postmount"]:
                await self.run_command("postmount", command, "creating")

    def jail(self) -> None:
        """runc's pivotRoot, msMoveRoot (no_pivot_root) or chroot (no mount namespace)."""
        plan = self.plan
        if not plan["mount_namespace"]:
            self.later("pivot_root", lambda: chroot_into(self.rootfd), "root.path")
        elif plan["no_pivot_root"]:
            self.later("pivot_root", lambda: ms_move_root(self.rootfd, plan["rootfs"]), "root.path")
        else:
            self.later("pivot_root", lambda: pivot_into(self.rootfd), "root.path")
        if plan["reapply_propagation"]:
            self.later(
                "pivot_root",
                partial(reapply_root_propagation, plan["root_propagation"]),
                "linux.rootfsPropagation",
            )

    def finalize_rootfs(self) -> None:
        """runc's finalizeRootfs, then what follows it: names, sysctls, protected paths."""
        plan = self.plan
        self.later(
            "finalize",
            lambda: finalize_rootfs(
                self.rootfd,
                plan["mounts"],
                readonly_root=plan["readonly_root"],
                umask=plan["process"]["umask"],
            ),
        )
        self.later("hostname", partial(set_names, plan["hostname"], plan["domainname"]), "hostname")
        if plan["sysctl"]:
            self.later("sysctl", self._write_sysctls, "linux.sysctl")
        self.later(
            "readonly_paths",
            lambda: readonly_paths(self.rootfd, plan["readonly_paths"]),
            "linux.readonlyPaths",
        )
        self.later(
            "masked_paths",
            lambda: mask_paths(self.rootfd, plan["masked_paths"]),
            "linux.maskedPaths",
        )

    async def _listener_before_created(self) -> None:
        """runc create with noNewPrivileges and a listener: the filter now, not at exec.

        The listener must reach the agent while create's process is there to send
        it, so it is loaded before the exec fifo wait, where runc 1.1 always loads
        it; without a listener it stays as late as possible (right before execve).
        """
        from ..seccomp._load import has_listener

        if has_listener(self.plan["process"]["seccomp"]):
            await self._seccomp()
            assert self.prepared is not None
            self.prepared = self.prepared._replace(seccomp_loaded=True)

    async def _seccomp(self) -> None:
        """Load the filter, hand its listener over (runc's procSeccomp). Without
        no_new_privs, seccomp() needs CAP_SYS_ADMIN: loaded before the credentials
        change, as runc does (everything after runs filtered)."""
        try:
            listener = load_seccomp(self.plan["process"])
        except Exception as exc:
            raise StageFailed("seccomp", "linux.seccomp", exc) from exc
        if listener is not None:
            try:
                await self.channel.send(Kind.SECCOMP, {"fd": listener})
                await self.inbox.reply("seccomp", Kind.SECCOMP_DONE)
            finally:
                os.close(listener)

    def _scheduling(self) -> None:
        """process.scheduler and ioPriority, at runc's point: before procReady."""
        process = self.plan["process"]
        if process["scheduler"] is None and process["io_priority"] is None:
            return
        from ._attributes import set_io_priority, set_scheduler

        try:
            set_scheduler(process)
            set_io_priority(process)
        except StepError as exc:
            raise StageFailed("scheduler", exc.field, exc) from exc

    async def finish_process(self) -> None:
        """procReady/procRun, rlimits, the process's preparation, startContainer hooks."""
        plan = self.plan
        await self.in_cgroup()
        self._scheduling()  # in this (the main) thread: both are per thread
        if plan["parent_rlimits"]:
            await self.channel.send(Kind.READY)
            await self.inbox.reply("ready", Kind.RUN)
        try:
            apply_limits(plan["process"])
        except OSError as exc:
            raise StageFailed("rlimits", "process.rlimits", exc) from exc
        # In this (the main) thread: capabilities are per thread, and this thread
        # execs.  startContainer hooks then run with the workload's credentials.
        try:
            _join_session_keyring(plan["container_id"])
        except Exception as exc:
            raise StageFailed("exec", "process.args", exc) from exc
        if not plan["process"]["no_new_privileges"]:
            await self._seccomp()
        try:
            self.prepared = prepare_process(plan["process"], self.channel.socket, self.terminal)
        except Exception as exc:
            raise StageFailed("exec", "process.args", exc) from exc
        if self.procfd >= 0:  # for process.apparmorProfile, written right before the exec
            self.prepared = self.prepared._replace(procfd=self.procfd)
        if self.exec_fifo >= 0:
            # runc create: the parent goes now; startContainer hooks follow ``start``.
            try:
                check_executable(self.prepared.executable)
            except StepError as exc:
                raise StageFailed("exec", "process.args", exc) from exc
            self.prepared = self.prepared._replace(exec_fifo=self.exec_fifo)
            if plan["process"]["no_new_privileges"] and plan["process"]["seccomp"] is not None:
                await self._listener_before_created()
            await self.channel.send(Kind.CREATED)
            return
        for command in plan["start_container_hooks"]:
            await self.run_command("startContainer", command, "created")
