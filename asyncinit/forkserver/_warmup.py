"""Run the init's event-loop machinery a few times in the fork server, before it forks.

CPython 3.11 rewrites a function's bytecode in place once it has run a few times
(quickening, then specialization).  Left to every forked init, those writes copy
each page holding a code object the start touches (copy-on-write), and the
first run of asyncio's machinery allocates caches of its own.  Done once here,
every init inherits the result.  What runs is the init's own code: the
:class:`~asyncinit.init._inbox.Inbox` (reader task, memory stream, bounded
reply) over a real sync-pipe :class:`~asyncinit.sync_pipe.Channel`, so the
warm-up cannot drift from what every start runs.  No thread is started: the
server must stay single-threaded to fork safely.
"""

from __future__ import annotations

import socket

import anyio

from ..init._inbox import Inbox
from ..sync_pipe import Channel, Kind, Message

#: CPython 3.11 quickens a code object after 8 calls; a few more reach specialization.
_RUNS = 12
#: The warm-up waits for its own message as the init waits for the parent's ``run``.
_TIMEOUTS = {Kind.READY: 5.0}


async def _converse(ours: socket.socket, theirs: socket.socket) -> None:
    """One message through the init's inbox, the way ``Lifecycle.run`` hears the parent."""
    inbox = Inbox(Channel(ours), _TIMEOUTS)
    peer = Channel(theirs)

    async def exchange() -> Message:
        await peer.send(Kind.READY, {"warm": True})
        return await inbox.reply("warm-up", Kind.READY)

    message = await inbox.run(exchange)
    if message.fields != {"warm": True}:
        raise AssertionError(f"warm-up message came back as {message!r}")


def warm_up(backend: str) -> None:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    with ours, theirs:
        for _ in range(_RUNS):
            anyio.run(_converse, ours, theirs, backend=backend)
