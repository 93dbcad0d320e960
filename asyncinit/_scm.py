"""What the sync pipe and the CLI's daemon client share: datagram bounds and SCM_RIGHTS.

Standard library C modules only: the client imports this on a path that must not
pay for ``socket``'s enum and ``re``.
"""

from __future__ import annotations

import _socket
import array

#: Largest datagram either side sends (the socket's default send buffer is ~208 KiB;
#: the sync pipe spills bigger messages to a memfd).
MAX_MESSAGE = 192 * 1024
#: Largest body the sync pipe reads back from a spilled message's memfd (a plan
#: built from a config.json of at most config's MAX_CONFIG_SIZE stays well below).
MAX_SPILL = 64 * 1024 * 1024
#: Most fds one message carries.
MAX_FDS = 16
#: Ancillary space for MAX_FDS fds, as recvmsg wants it.
FD_SPACE = _socket.CMSG_SPACE(MAX_FDS * array.array("i").itemsize)


def received_fds(ancillary: list[tuple[int, int, bytes]]) -> list[int]:
    """The fds a recvmsg delivered (SCM_RIGHTS), a truncated last one left out."""
    fds: list[int] = []
    for level, kind, payload in ancillary:
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
            received = array.array("i")
            received.frombytes(payload[: len(payload) - len(payload) % received.itemsize])
            fds.extend(received)
    return fds
