"""Unit tests of the sync pipe: framing, fd passing, end of file, malformed input."""

from __future__ import annotations

import array
import fcntl
import os
import socket
import time
from collections.abc import Callable

import anyio
import pytest

from asyncinit._scm import MAX_MESSAGE, MAX_SPILL
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


# --- hostile input: whatever the peer sends, a ProtocolError and no fd left open


def _send_raw(sock: socket.socket, raw: bytes, fds: list[int]) -> None:
    sock.sendmsg([raw], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])


def _closed_by_receiver(check_end: int) -> bool:
    """Whether the only other copy of a pipe's write end is gone (read gives EOF)."""
    return os.read(check_end, 1) == b""


@pytest.mark.parametrize(
    "raw",
    [
        b"[" * 150000,  # deeper than the parser's recursion bound: RecursionError before
        b'{"type": "x", "deep": ' + b"[" * 150000,
        b'{"type": "x", "n": NaN}',
        b'{"type": "x", "n": -Infinity}',
        b'{"type": "x", "n": ' + b"1" * 5000 + b"}",
        b'{"type": "x", "s": "\xff"}',
        '{"type": "x"}'.encode("utf-16"),  # json.loads(bytes) guesses encodings
        b'{"type": "x"}\x00',
        b"\x00" * 1000,
    ],
)
def test_hostile_payloads_are_protocol_errors(raw: bytes) -> None:
    ours, theirs = socketpair()
    read_end, write_end = os.pipe()
    with ours, theirs:
        _send_raw(ours, raw, [write_end])
        os.close(write_end)
        with pytest.raises(ProtocolError):
            receive_blocking(theirs)
        assert _closed_by_receiver(read_end)
        os.close(read_end)


def _sealed_memfd(body: bytes = b'{"type": "x"}', size: int | None = None) -> int:
    fd = os.memfd_create("test", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    os.write(fd, body)
    if size is not None:
        os.ftruncate(fd, size)  # sparse: costs no memory
    fcntl.fcntl(fd, 1033, 0xF)  # F_ADD_SEALS: SEAL, SHRINK, GROW, WRITE
    return fd


def _unsealed_memfd() -> int:
    fd = os.memfd_create("test", os.MFD_CLOEXEC)
    os.write(fd, b'{"type": "x"}')
    return fd


def _regular_file() -> int:
    fd = os.open("/tmp", os.O_RDWR | os.O_TMPFILE)
    os.write(fd, b'{"type": "x"}')
    return fd


SPILL_FDS: dict[str, Callable[[], int]] = {
    "pipe": lambda: os.pipe()[0],  # ESPIPE before (its write end leaks here: test only)
    "directory": lambda: os.open("/", os.O_RDONLY),  # EISDIR before
    "/dev/zero": lambda: os.open("/dev/zero", os.O_RDONLY),  # read until out of memory
    "unsealed memfd": _unsealed_memfd,  # could change or grow while read
    "regular file": _regular_file,
    "empty sealed memfd": lambda: _sealed_memfd(b""),
    "sealed memfd over the bound": lambda: _sealed_memfd(size=MAX_SPILL + 1),
    "sealed memfd, invalid UTF-8": lambda: _sealed_memfd(b'{"type": "\xff"}'),
}


@pytest.mark.parametrize("kind", list(SPILL_FDS))
def test_a_spilled_body_must_be_a_sealed_bounded_memfd(kind: str) -> None:
    ours, theirs = socketpair()
    read_end, write_end = os.pipe()
    spill = SPILL_FDS[kind]()
    with ours, theirs:
        _send_raw(ours, b'{"type": "run", "spilled": true}', [write_end, spill])
        for fd in (write_end, spill):
            os.close(fd)
        start = time.monotonic()
        with pytest.raises(ProtocolError, match="spilled"):
            receive_blocking(theirs)
        assert time.monotonic() - start < 1  # nothing was read
        assert _closed_by_receiver(read_end)
        os.close(read_end)


@pytest.mark.parametrize(
    "raw", [b'{"type": "plan", "spilled": 1}', b'{"type": "plan", "spilled": true, "x": 1}']
)
def test_a_spilled_message_says_nothing_else(raw: bytes) -> None:
    ours, theirs = socketpair()
    spill = _sealed_memfd()
    with ours, theirs:
        _send_raw(ours, raw, [spill])
        os.close(spill)
        with pytest.raises(ProtocolError, match="spilled"):
            receive_blocking(theirs)


async def test_a_channel_may_accept_no_spilled_message_at_all() -> None:
    ours, theirs = socketpair()
    receiver = Channel(theirs, max_spill=0)
    spill = _sealed_memfd()
    with ours:
        _send_raw(ours, b'{"type": "run", "spilled": true}', [spill])
        os.close(spill)
        with pytest.raises(ProtocolError, match="not accepted here"):
            await receiver.receive()
    receiver.close()
