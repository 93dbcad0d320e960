"""The init's asynchronous orchestration: the order of steps and the talk with the parent.

Each rootfs or devices step is a plain synchronous function run in a worker
thread behind one ``CapacityLimiter(1)``: pivot_root, chdir and umask act on the
fs_struct every thread shares, so two of them must never overlap.  Commands
(premount/postmount, createContainer and startContainer hooks) run as
subprocesses while the loop stays responsive.

A reader task owns the receiving side of the sync socket for the whole start:
end of file there (the parent died) cancels whatever runs, a command included,
and the init exits.  Each wait for a reply is bounded by the plan's
``reply_timeouts``, so a parent that stops answering cannot keep it for ever.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar, TypeVarTuple

import anyio
import anyio.to_thread
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from .._commands import run_command
from .._errors import CommandError, StepError
from .._plan import CommandPlan, InitPlan
from ..devices._nodes import create_devices
from ..devices._null import reopen_dev_null
from ..devices._symlinks import setup_dev_symlinks
from ..rootfs._finalize import finalize_rootfs, make_cwd, set_names
from ..rootfs._jail import chroot_into, ms_move_root, pivot_into, reapply_root_propagation
from ..rootfs._masks import mask_paths, readonly_paths
from ..rootfs._mount import mount_to_rootfs, open_root, prepare_root
from ..rootfs._procfs import open_private_procfs
from ..rootfs._sysctl import write_sysctls
from ..sync_pipe import Channel, Kind, Message, PeerGone, ProtocolError
from ._process import Prepared, before_jail, prepare_process

T = TypeVar("T")
Ts = TypeVarTuple("Ts")


class StageFailed(Exception):
    """Wraps the exception of one step with the stage and config field it belongs to."""

    def __init__(self, stage: str, field: str | None, cause: BaseException) -> None:
        super().__init__(stage)
        self.stage = stage
        self.field = field
        self.cause = cause


class Lifecycle:
    """One container start, from the plan to the moment the workload may be executed."""

    def __init__(self, channel: Channel, plan: InitPlan, state: dict[str, Any]) -> None:
        self.channel = channel
        self.plan = plan
        self.state = state
        self.limiter = anyio.CapacityLimiter(1)
        self.rootfd = -1
        self.procfd = -1
        #: the workload's executable and environment, once prepare_process ran
        self.prepared: Prepared | None = None
        self._inbox: MemoryObjectReceiveStream[Message] | None = None

    async def run(self) -> Prepared:
        """:meth:`create` while the reader task watches the parent; the prepared process."""
        send, receive = anyio.create_memory_object_stream[Message](4)
        self._inbox = receive
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._read, send)
            try:
                await self.create()
            finally:
                tg.cancel_scope.cancel()
        assert self.prepared is not None
        return self.prepared

    async def _read(self, inbox: MemoryObjectSendStream[Message]) -> None:
        async with inbox:
            while True:
                await inbox.send(await self.channel.receive())  # PeerGone ends the start

    async def reply(self, stage: str, kind: str) -> Message:
        """The parent's next message, which must be ``kind``, within its reply timeout."""
        assert self._inbox is not None
        timeout = self.plan["reply_timeouts"].get(kind)
        try:
            with anyio.fail_after(math.inf if timeout is None else timeout):
                message = await self._inbox.receive()
        except TimeoutError:
            raise StageFailed(
                stage,
                None,
                StepError(f"the parent did not answer with {kind!r} within {timeout:g}s"),
            ) from None
        except anyio.EndOfStream:
            raise PeerGone("the other end of the sync pipe closed") from None
        if message.kind != kind:
            raise ProtocolError(f"expected {kind!r} on the sync pipe, got {message.kind!r}")
        return message

    async def step(
        self, stage: str, fn: Callable[[*Ts], T], *args: *Ts, field: str | None = None
    ) -> T:
        try:
            return await anyio.to_thread.run_sync(fn, *args, limiter=self.limiter)
        except Exception as exc:
            raise StageFailed(stage, field, exc) from exc

    async def run_command(self, stage: str, command: CommandPlan, status: str) -> None:
        state = json.dumps({**self.state, "status": status}).encode()
        try:
            await run_command(command, state)
        except CommandError as exc:
            raise StageFailed(stage, command["field"], exc) from exc

    async def mount_source(self, index: int) -> int:
        """Ask the parent for mounts[index]'s detached source mount (runc's procMountPlease)."""
        await self.channel.send(Kind.MOUNT_PLEASE, {"index": index})
        message = await self.reply("mount", Kind.MOUNT_FD)
        if len(message.fds) != 1:
            for fd in message.fds:
                os.close(fd)
            raise StageFailed(
                "mount",
                f"mounts[{index}]",
                StepError(f"expected one mount fd from the parent, got {len(message.fds)}"),
            )
        return message.fds[0]

    async def create(self) -> None:
        """Everything before ``ready``, in runc's order."""
        plan = self.plan
        if plan["mount_namespace"]:
            self.rootfd = await self.step("prepare_root", prepare_root, plan, field="root.path")
        else:  # the parent refused every mount: with no namespace they would hit the host
            self.rootfd = await self.step(
                "prepare_root", open_root, plan["rootfs"], field="root.path"
            )
        if plan["sysctl"]:
            # Opened while the host's /proc is still whole (see _procfs), used after the jail.
            self.procfd = await self.step("sysctl", open_private_procfs, field="linux.sysctl")
        for index, m in enumerate(plan["mounts"]):
            for command in m["premount"]:
                await self.run_command("premount", command, "creating")
            source_fd = await self.mount_source(index) if m["idmap"] else None
            try:
                await self.step(
                    "mount",
                    mount_to_rootfs,
                    self.rootfd,
                    plan["rootfs"],
                    m,
                    plan,
                    source_fd,
                    field=m["field"],
                )
            finally:
                if source_fd is not None:
                    os.close(source_fd)
            for command in m["postmount"]:
                await self.run_command("postmount", command, "creating")
        if plan["setup_dev"]:
            await self.step(
                "devices",
                partial(create_devices, bind=plan["user_namespace"]),
                self.rootfd,
                plan["devices"],
                field="linux.devices",
            )
            await self.step("devices", setup_dev_symlinks, self.rootfd)
        if plan["new_network"]:
            from ..network._loopback import loopback_up

            await self.step("network", loopback_up)
        # The parent runs prestart and createRuntime hooks now: the old root is
        # still visible and the mounts are in place (runc's procHooks).
        await self.channel.send(Kind.HOOKS)
        await self.reply("hooks", Kind.HOOKS_DONE)
        for command in plan["create_container_hooks"]:
            await self.run_command("createContainer", command, "creating")
        # What needs the host's /proc: the container may have no procfs of its own.
        await self.step("process", before_jail, plan["process"], field="process")
        if not plan["mount_namespace"]:
            await self.step("pivot_root", chroot_into, self.rootfd, field="root.path")
        elif plan["no_pivot_root"]:
            await self.step(
                "pivot_root", ms_move_root, self.rootfd, plan["rootfs"], field="root.path"
            )
        else:
            await self.step("pivot_root", pivot_into, self.rootfd, field="root.path")
        if plan["reapply_propagation"]:
            await self.step(
                "pivot_root",
                reapply_root_propagation,
                plan["root_propagation"],
                field="linux.rootfsPropagation",
            )
        if plan["setup_dev"]:
            await self.step("reopen_dev_null", reopen_dev_null, self.rootfd)
        await self.step("cwd", make_cwd, self.rootfd, plan["process"]["cwd"], field="process.cwd")
        await self.step("finalize", finalize_rootfs, self.rootfd, plan)
        await self.step("hostname", set_names, plan, field="hostname")
        if self.procfd >= 0:
            await self.step(
                "sysctl", write_sysctls, self.procfd, plan["sysctl"], field="linux.sysctl"
            )
            os.close(self.procfd)
            self.procfd = -1
        await self.step(
            "readonly_paths",
            readonly_paths,
            self.rootfd,
            plan["readonly_paths"],
            field="linux.readonlyPaths",
        )
        await self.step(
            "masked_paths", mask_paths, self.rootfd, plan["masked_paths"], field="linux.maskedPaths"
        )
        os.close(self.rootfd)
        self.rootfd = -1
        await self.channel.send(Kind.READY)
        await self.reply("ready", Kind.RUN)
        # In this (the main) thread: capabilities are per thread, and this thread
        # execs.  startContainer hooks then run with the workload's credentials.
        try:
            self.prepared = prepare_process(plan["process"], self.channel.socket)
        except Exception as exc:
            raise StageFailed("exec", "process.args", exc) from exc
        for command in plan["start_container_hooks"]:
            await self.run_command("startContainer", command, "created")
