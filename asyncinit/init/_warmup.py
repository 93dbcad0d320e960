"""Run the init's event-loop machinery a few times in the fork server, before it forks.

CPython 3.11 rewrites a function's bytecode in place once it has run a few times
(quickening, then specialization).  Left to every forked init, those writes copy
each page holding a code object the start touches (copy-on-write), and the
first run of asyncio's machinery allocates caches of its own.  Done once here,
every init inherits the result.  No thread is started: the server must stay
single-threaded to fork safely.
"""

from __future__ import annotations

import socket

import anyio
from anyio.streams.memory import MemoryObjectSendStream

from ..sync_pipe import Channel, Kind, Message

#: CPython 3.11 quickens a code object after 8 calls; a few more reach specialization.
_RUNS = 12


async def _pump(channel: Channel, inbox: MemoryObjectSendStream[Message]) -> None:
    async with inbox:
        await inbox.send(await channel.receive())


async def _converse(ours: socket.socket, theirs: socket.socket) -> None:
    """One message through the reader-task shape of the init's lifecycle."""
    channel, peer = Channel(ours), Channel(theirs)
    send, receive = anyio.create_memory_object_stream[Message](4)
    async with anyio.create_task_group() as tg:
        tg.start_soon(_pump, channel, send)
        await peer.send(Kind.READY, {"warm": True})
        with anyio.fail_after(5):
            message = await receive.receive()
        tg.cancel_scope.cancel()
    receive.close()
    if message.kind != Kind.READY:
        raise AssertionError(f"warm-up message came back as {message.kind!r}")


def warm_up(backend: str) -> None:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    with ours, theirs:
        for _ in range(_RUNS):
            anyio.run(_converse, ours, theirs, backend=backend)
