"""Unit tests of the sync pipe: framing, fd passing, end of file, malformed input."""

from __future__ import annotations

import os
import socket

import anyio
import pytest

from asyncinit._scm import MAX_MESSAGE
from asyncinit.sync_pipe import (
    Channel,
    Kind,
    Message,
    PeerGone,
    ProtocolError,
    receive_blocking,
    send_blocking,
    socketpair,
)

pytestmark = pytest.mark.anyio


async def test_messages_keep_their_boundaries_and_fields() -> None:
    ours, theirs = socketpair()
    parent, init = Channel(ours), Channel(theirs)
    await parent.send(Kind.PLAN, {"plan": {"rootfs": "/r", "mounts": []}, "n": 1})
    await parent.send(Kind.RUN)
    first, second = await init.receive(), await init.receive()
    assert (first.kind, first.fields) == (
        Kind.PLAN,
        {"plan": {"rootfs": "/r", "mounts": []}, "n": 1},
    )
    assert (second.kind, second.fields, second.fds) == (Kind.RUN, {}, ())
    parent.close()
    init.close()


async def test_fds_cross_the_pipe_close_on_exec() -> None:
    ours, theirs = socketpair()
    parent, init = Channel(ours), Channel(theirs)
    read_end, write_end = os.pipe()
    try:
        await init.send(Kind.PTY, fds=[write_end])
        message = await parent.expect(Kind.PTY)
        (received,) = message.fds
        assert not os.get_inheritable(received)
        os.write(received, b"through the pipe")
        os.close(received)
        assert os.read(read_end, 100) == b"through the pipe"
    finally:
        for fd in (read_end, write_end):
            os.close(fd)
        parent.close()
        init.close()


async def test_end_of_file_is_peer_gone() -> None:
    ours, theirs = socketpair()
    init = Channel(theirs)
    ours.close()
    with pytest.raises(PeerGone):
        await init.receive()
    init.close()


async def test_receive_waits_without_blocking_the_loop() -> None:
    ours, theirs = socketpair()
    parent, init = Channel(ours), Channel(theirs)
    received: list[str] = []

    async def listen() -> None:
        received.append((await init.receive()).kind)

    async with anyio.create_task_group() as tg:
        tg.start_soon(listen)
        await anyio.sleep(0.05)  # the listener is parked, the loop still runs us
        assert received == []
        await parent.send(Kind.READY)
    assert received == [Kind.READY]
    parent.close()
    init.close()


async def test_expect_refuses_another_kind() -> None:
    ours, theirs = socketpair()
    parent, init = Channel(ours), Channel(theirs)
    await parent.send(Kind.RUN)
    with pytest.raises(ProtocolError, match="expected 'hooks_done'"):
        await init.expect(Kind.HOOKS_DONE)
    parent.close()
    init.close()


@pytest.mark.parametrize("raw", [b"not json", b"[1, 2]", b'{"no": "type"}', b'{"type": 5}'])
def test_malformed_messages_are_protocol_errors_and_free_their_fds(raw: bytes) -> None:
    ours, theirs = socketpair()
    read_end, write_end = os.pipe()
    ours.sendmsg([raw], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, write_end.to_bytes(4, "little"))])
    os.close(write_end)
    with pytest.raises(ProtocolError):
        receive_blocking(theirs)
    # the fd that came with it was closed: the pipe's only writer is gone
    assert os.read(read_end, 1) == b""
    os.close(read_end)
    ours.close()
    theirs.close()


def test_a_message_larger_than_a_datagram_travels_in_a_memfd() -> None:
    ours, theirs = socketpair()
    big = {"annotations": {"blob": "x" * (MAX_MESSAGE * 2)}}
    read_end, write_end = os.pipe()
    send_blocking(ours, Message(Kind.PLAN, big, [write_end]))
    message = receive_blocking(theirs)
    assert message.kind == Kind.PLAN
    assert message.fields == big
    assert len(message.fds) == 1  # the memfd was consumed, the real fd is there
    for fd in (*message.fds, read_end, write_end):
        os.close(fd)
    ours.close()
    theirs.close()
