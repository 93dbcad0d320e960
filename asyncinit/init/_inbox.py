"""The init's side of the sync pipe during a start: a reader task and bounded replies.

A reader task owns the receiving side of the sync socket for the whole start:
end of file there (the parent died) cancels whatever runs, a command included,
and the init exits.  Each wait for a reply is bounded by the plan's
``reply_timeouts``, so a parent that stops answering cannot keep it for ever.

The fork server warms exactly this code before it forks (``forkserver/_warmup``):
what it warms is what every init runs.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Mapping
from typing import TypeVar

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from .._errors import StepError
from ..sync_pipe import Channel, Kind, Message, PeerGone, ProtocolError

T = TypeVar("T")


class StageFailed(Exception):
    """Wraps the exception of one step with the stage and config field it belongs to."""

    def __init__(self, stage: str, field: str | None, cause: BaseException) -> None:
        super().__init__(stage)
        self.stage = stage
        self.field = field
        self.cause = cause


class Inbox:
    """The parent's messages, read by a task of their own while ``body`` runs."""

    def __init__(self, channel: Channel, timeouts: Mapping[str, float | None]) -> None:
        self.channel = channel
        #: seconds to wait for each reply kind; None (or a kind not listed): for ever
        self.timeouts = timeouts
        self._receive: MemoryObjectReceiveStream[Message] | None = None
        #: set when the parent says ``cgroup`` (whenever it comes: it is no reply)
        self.in_cgroup = anyio.Event()

    async def run(self, body: Callable[[], Awaitable[T]]) -> T:
        """``body()`` while the reader task watches the parent; its EOF cancels ``body``."""
        send, receive = anyio.create_memory_object_stream[Message](4)
        self._receive = receive
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._read, send)
                try:
                    result = await body()
                finally:
                    tg.cancel_scope.cancel()
        finally:
            receive.close()
        return result

    async def _read(self, inbox: MemoryObjectSendStream[Message]) -> None:
        async with inbox:
            while True:
                message = await self.channel.receive()  # PeerGone ends the start
                if message.kind == Kind.CGROUP:
                    self.in_cgroup.set()
                else:
                    await inbox.send(message)

    async def cgroup_entered(self) -> None:
        """Wait, within the ``cgroup`` reply timeout, until the parent moved us."""
        timeout = self.timeouts.get(Kind.CGROUP)
        try:
            with anyio.fail_after(math.inf if timeout is None else timeout):
                await self.in_cgroup.wait()
        except TimeoutError:
            raise StageFailed(
                "cgroup",
                "linux.resources",
                StepError(f"the parent did not move us into the cgroup within {timeout:g}s"),
            ) from None

    async def reply(self, stage: str, kind: str) -> Message:
        """The parent's next message, which must be ``kind``, within its reply timeout."""
        assert self._receive is not None
        timeout = self.timeouts.get(kind)
        try:
            with anyio.fail_after(math.inf if timeout is None else timeout):
                message = await self._receive.receive()
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
