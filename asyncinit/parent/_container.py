"""The handle spawn() returns: a started container's pid, signals, exit status, stdio."""

from __future__ import annotations

import contextlib
import os
import signal
from types import TracebackType
from typing import TYPE_CHECKING

import anyio
from anyio.abc import ByteReceiveStream, ByteSendStream

from .. import _syscalls as sc
from .._errors import ContainerStartError
from ..sync_pipe import Channel, PeerGone
from ._hooks import PythonHooks, oci_state, run_hooks_reporting

if TYPE_CHECKING:
    from ..config import Spec


def exit_code(wait_status: int) -> int:
    """A shell's view of a wait status: the exit code, or 128 + the killing signal."""
    if os.WIFSIGNALED(wait_status):
        return 128 + os.WTERMSIG(wait_status)
    return os.waitstatus_to_exitcode(wait_status)


class Container:
    """A running (or finished) container.  Use as ``async with`` to kill and reap on exit."""

    def __init__(
        self,
        *,
        container_id: str,
        spec: Spec,
        bundle: str,
        rootfs: str,
        pid: int,
        pidfd: int,
        status: Channel,
        hooks: PythonHooks,
        hook_timeout: float | None = None,
    ) -> None:
        self.id = container_id
        self.spec = spec
        self.bundle = bundle
        self.rootfs = rootfs
        #: PID 1 of the container, as the host sees it
        self.pid = pid
        self.stdin: ByteSendStream | None = None
        self.stdout: ByteReceiveStream | None = None
        self.stderr: ByteReceiveStream | None = None
        #: exit code (128 + signal for a signal death) once the container is reaped
        self.returncode: int | None = None
        #: failures of poststart/poststop hooks: reported, not fatal (OCI spec)
        self.warnings: list[str] = []
        #: PID 1's raw wait status once reaped (tells a signal death from an exit)
        self.wait_status: int | None = None
        self._pidfd = pidfd
        self._status = status
        self._hooks = hooks
        self._hook_timeout = hook_timeout
        self._wait_lock = anyio.Lock()

    def __repr__(self) -> str:
        state = "running" if self.returncode is None else f"exited {self.returncode}"
        return f"<asyncinit.Container {self.id!r} pid={self.pid} {state}>"

    def namespace_path(self, kind: str) -> str:
        """``/proc/PID/ns/KIND`` of PID 1 (``net``, ``mnt``, ``pid``, ...)."""
        return f"/proc/{self.pid}/ns/{kind}"

    def state(self, status: str) -> dict[str, object]:
        return oci_state(self.spec, self.id, self.pid, self.bundle, status)

    def send_signal(self, signum: int) -> None:
        """Signal PID 1 through its pidfd: never a recycled pid."""
        if self.returncode is not None or self._pidfd < 0:
            return
        with contextlib.suppress(ProcessLookupError):
            sc.pidfd_send_signal(self._pidfd, signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    async def wait(self) -> int:
        """Wait for PID 1 to exit (the whole container dies with it) and run poststop hooks."""
        async with self._wait_lock:
            if self.returncode is not None:
                return self.returncode
            try:
                message = await self._status.expect("exited")
            except PeerGone as exc:
                raise ContainerStartError(
                    "the fork server died; the container was killed with it"
                ) from exc
            self.wait_status = message.fields["status"]
            self.returncode = exit_code(self.wait_status)
            self._release()
            hooks = self.spec.hooks
            self.warnings += await run_hooks_reporting(
                "poststop",
                hooks.poststop if hooks else (),
                self._hooks.poststop,
                self,
                self._hook_timeout,
            )
            return self.returncode

    async def poststart(self) -> None:
        """Run the poststart hooks (spawn() does, once the workload was executed)."""
        hooks = self.spec.hooks
        self.warnings += await run_hooks_reporting(
            "poststart",
            hooks.poststart if hooks else (),
            self._hooks.poststart,
            self,
            self._hook_timeout,
        )

    def _release(self) -> None:
        if self._pidfd >= 0:
            os.close(self._pidfd)
            self._pidfd = -1
        self._status.close()

    async def aclose(self) -> None:
        """Kill the container if it still runs, reap it and close its streams."""
        with anyio.CancelScope(shield=True):
            if self.returncode is None:
                self.kill()
                await self.wait()
            for stream in (self.stdin, self.stdout, self.stderr):
                if stream is not None:
                    await stream.aclose()

    async def __aenter__(self) -> Container:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
