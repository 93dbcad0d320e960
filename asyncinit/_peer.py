"""Who is on the other end of a daemon connection, and whether it may have what it asks.

The daemon starts containers with its own rights, so it must never give a
caller more than the caller could take itself: runc, run by that caller, would
fail with EPERM.  A caller is served only if it holds everything the daemon
holds: the same effective uid, the daemon's user namespace (root in a child
user namespace is root over nothing), every capability of the daemon's
effective and bounding sets, and no confinement the daemon lacks
(``no_new_privs``, seccomp filters, an enforcing AppArmor profile).  Anyone
else is declined and the client runs in-process, with its own rights.

The peer's process is pinned by a pidfd (``SO_PEERPIDFD`` from Linux 6.5,
else ``pidfd_open`` of the ``SO_PEERCRED`` pid): its ``/proc`` directory is
opened, then the pidfd is checked still running, so every later read through
that directory is of the process that connected, even if its pid is reused.
"""

from __future__ import annotations

import os
import select
import socket
import struct
from collections.abc import Iterator
from typing import NamedTuple

#: getsockopt: a pidfd of the process that connected (Linux 6.5; ENOPROTOOPT before).
SO_PEERPIDFD = 77
_NO_LSM = None


class Credentials(NamedTuple):
    """What a process may do, as far as starting a container is concerned."""

    uid: int  # effective
    user_ns: tuple[int, int]  # (st_dev, st_ino) of /proc/PID/ns/user
    cap_effective: int
    cap_bounding: int
    no_new_privs: bool
    seccomp: tuple[int, int]  # (mode, number of filters)
    apparmor: str | None  # the AppArmor label, None without AppArmor


class PeerUnknown(Exception):
    """The peer's credentials cannot be established (it exited, or is out of sight)."""


def peer_cred(conn: socket.socket) -> tuple[int, int]:
    """(pid, uid) of the process that connected (SO_PEERCRED: taken at connect time)."""
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, _ = struct.unpack("3i", creds)
    return pid, uid


def own_credentials() -> Credentials:
    proc = os.open("/proc/self", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        return _read(proc)
    finally:
        os.close(proc)


def peer_credentials(conn: socket.socket) -> Credentials:
    """The credentials of the process that connected; PeerUnknown when it cannot be pinned."""
    pid, _ = peer_cred(conn)
    pidfd = _peer_pidfd(conn, pid)
    try:
        pinned = pidfd_pid(pidfd)
        if pinned < 0:
            raise PeerUnknown("the client exited")
        if pid <= 0 or pinned != pid:
            raise PeerUnknown("the client is not visible from the daemon's pid namespace")
        try:
            proc = os.open(f"/proc/{pid}", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise PeerUnknown("the client exited") from None
        try:
            if select.select([pidfd], [], [], 0)[0]:  # readable: it exited, the pid may be reused
                raise PeerUnknown("the client exited")
            return _read(proc)  # the directory is the pidfd's process: safe to read at leisure
        finally:
            os.close(proc)
    finally:
        os.close(pidfd)


def _peer_pidfd(conn: socket.socket, pid: int) -> int:
    try:
        return conn.getsockopt(socket.SOL_SOCKET, SO_PEERPIDFD)
    except OSError:  # ENOPROTOOPT before Linux 6.5: the connect-time pid is all there is
        pass
    if pid <= 0:
        raise PeerUnknown("the client is not visible from the daemon's pid namespace")
    try:
        return os.pidfd_open(pid)
    except ProcessLookupError:
        raise PeerUnknown("the client exited") from None


def pidfd_pid(pidfd: int) -> int:
    """The pid a pidfd refers to, in our pid namespace (0: not visible, -1: exited)."""
    with open(f"/proc/self/fdinfo/{pidfd}") as f:
        for line in f:
            if line.startswith("Pid:"):
                return int(line.split()[1])
    return -1


def _read(proc: int) -> Credentials:
    """Credentials from an open /proc/PID directory."""
    fields: dict[str, str] = {}
    with open("status", opener=lambda path, flags: os.open(path, flags, dir_fd=proc)) as f:
        for line in f:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    user_ns = os.stat("ns/user", dir_fd=proc)
    return Credentials(
        uid=int(fields["Uid"].split()[1]),
        user_ns=(user_ns.st_dev, user_ns.st_ino),
        cap_effective=int(fields["CapEff"], 16),
        cap_bounding=int(fields["CapBnd"], 16),
        no_new_privs=fields.get("NoNewPrivs", "0") != "0",
        seccomp=(int(fields.get("Seccomp", "0")), int(fields.get("Seccomp_filters", "0"))),
        apparmor=_apparmor_label(proc),
    )


def _apparmor_label(proc: int) -> str | None:
    try:
        fd = os.open("attr/apparmor/current", os.O_RDONLY | os.O_CLOEXEC, dir_fd=proc)
    except OSError:  # no AppArmor (ENOENT), or not enabled (EINVAL on read below)
        return _NO_LSM
    try:
        return os.read(fd, 4096).decode(errors="replace").strip("\0\n ")
    except OSError:
        return _NO_LSM
    finally:
        os.close(fd)


def refusal(peer: Credentials, own: Credentials) -> str | None:
    """Why ``peer`` may not have a container started with ``own`` rights, or None."""
    return "; ".join(_shortfalls(peer, own)) or None


def _shortfalls(peer: Credentials, own: Credentials) -> Iterator[str]:
    if peer.uid != own.uid:
        yield f"uid {peer.uid} may not use this daemon (it serves uid {own.uid} only)"
        return
    if peer.user_ns != own.user_ns:
        yield "the client is in another user namespace than the daemon"
        return  # its capabilities are over that namespace: meaningless here
    if missing := own.cap_effective & ~peer.cap_effective:
        yield f"the client lacks {capability_names(missing)}"
    if missing := own.cap_bounding & ~peer.cap_bounding:
        yield f"the client's bounding set lacks {capability_names(missing)}"
    if peer.no_new_privs and not own.no_new_privs:
        yield "the client runs with no_new_privs"
    (mode, filters), (own_mode, own_filters) = peer.seccomp, own.seccomp
    if mode > own_mode or filters > own_filters:
        yield f"the client runs under {filters} seccomp filters (the daemon {own_filters})"
    if _confining(peer.apparmor) and peer.apparmor != own.apparmor:
        yield f"the client is confined by AppArmor ({peer.apparmor})"


def _confining(label: str | None) -> bool:
    return label is not None and label != "unconfined" and not label.endswith(" (complain)")


def capability_names(mask: int, shown: int = 6) -> str:
    """``CAP_SYS_ADMIN, CAP_NET_ADMIN and 3 more``: the capabilities in ``mask``."""
    from .config import CAPABILITIES

    by_number = {number: name for name, number in CAPABILITIES.items()}
    names = [by_number.get(bit, f"capability {bit}") for bit in range(64) if mask >> bit & 1]
    # The ones that matter most for a container first, then in kernel order.
    names.sort(key=lambda name: name != "CAP_SYS_ADMIN")
    more = len(names) - shown
    return ", ".join(names[:shown]) + (f" and {more} more" if more > 0 else "")
