"""Veth pairs over netlink with pyroute2: never by running ``ip``.

Plain synchronous functions, run by the parent in worker threads: pyroute2's
async API is asyncio-only, its sync ``IPRoute`` works from any thread on either
backend.  pyroute2 is imported on first use (about 200 ms): a container without
``asyncinit.network`` never pays for it.

Every host end this container owns is recorded in :class:`HostLinks` the moment
it exists, as (ifindex, name): a failure half-way, a cancelled start and the
container's end all delete from that record.  Deleting one end of a veth
deletes its peer, so the host end is all there is to remove.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
import socket
import threading
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from .._errors import NetworkError
from .._syscalls._process import CLONE_NEWNET, setns
from ._plan import VethPlan

if TYPE_CHECKING:
    from pyroute2 import IPRoute

__all__ = ["HostLinks", "delete_veths", "setup_veths"]

_IFA_F_NODAD = 0x02  # <linux/if_addr.h>


class HostLinks:
    """The host-side interfaces a container owns, as (ifindex, name) pairs.

    Teardown deletes by index and only if the name still matches: a name alone
    could meanwhile belong to someone else's interface (ifindexes are not reused
    while the kernel's counter has not wrapped).
    """

    def __init__(self) -> None:
        self.links: list[tuple[int, str]] = []


def _netlink_error() -> type[Exception]:
    from pyroute2.netlink.exceptions import NetlinkError

    error: type[Exception] = NetlinkError
    return error


@contextlib.contextmanager
def _doing(field: str, what: str) -> Iterator[None]:
    """Turn netlink's bare errno into a NetworkError naming the step and the field."""
    try:
        yield
    except NetworkError:
        raise
    except (_netlink_error(), OSError) as exc:
        code = getattr(exc, "code", None) or getattr(exc, "errno", None)
        reason = os.strerror(code) if isinstance(code, int) and code else str(exc)
        raise NetworkError(f"{what}: {reason}", field=field, errno=code or None) from exc


def _netlink_socket_in(netns_fd: int) -> socket.socket:
    """A NETLINK_ROUTE socket inside the network namespace ``netns_fd``.

    A socket stays in the netns it was created in, and setns(CLONE_NEWNET) moves
    only the calling thread: a throwaway thread enters the namespace, so the
    worker pool's threads never leave ours.  (pyroute2's own ``netns=`` forks a
    child, which is unsafe in this threaded process.)
    """
    result: list[socket.socket | BaseException] = []

    def enter_and_open() -> None:
        try:
            setns(netns_fd, CLONE_NEWNET)
            flags = socket.SOCK_DGRAM | socket.SOCK_CLOEXEC
            result.append(socket.socket(socket.AF_NETLINK, flags, socket.NETLINK_ROUTE))
        except BaseException as exc:
            result.append(exc)

    thread = threading.Thread(target=enter_and_open, name="asyncinit-netns", daemon=True)
    thread.start()
    thread.join()
    (outcome,) = result
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome


def _address_options(address: str) -> dict[str, Any]:
    # No duplicate address detection: the addresses come from the config, and DAD
    # would keep an IPv6 address "tentative" (unusable) for the workload's first second.
    return {"flags": _IFA_F_NODAD} if ipaddress.ip_address(address).version == 6 else {}


def _preflight(host: IPRoute, inner: IPRoute, plans: Sequence[VethPlan]) -> dict[str, int]:
    """Every check that needs netlink, before anything is created; bridge name -> ifindex."""
    bridges: dict[str, int] = {}
    for plan in plans:
        if plan.bridge is not None and plan.bridge not in bridges:
            field = f"{plan.field}.bridge"
            with _doing(field, f"looking up bridge {plan.bridge}"):
                found = host.link_lookup(ifname=plan.bridge)
                if not found:
                    raise NetworkError(
                        f"{plan.bridge}: no such interface on the host",
                        field=field,
                        errno=errno.ENODEV,
                    )
                kind = host.get_links(found[0])[0].get_nested("IFLA_LINKINFO", "IFLA_INFO_KIND")
            if kind != "bridge":
                raise NetworkError(
                    f"{plan.bridge}: not a bridge (kind {kind or 'none'})", field=field
                )
            bridges[plan.bridge] = found[0]
        for ipr, name, key, where in (
            (host, plan.host_name, "hostName", "on the host"),
            (inner, plan.name, "name", "in the container's network namespace"),
        ):
            with _doing(f"{plan.field}.{key}", f"looking up {name}"):
                exists = bool(ipr.link_lookup(ifname=name))
            if exists:
                raise NetworkError(
                    f"{name}: already exists {where}",
                    field=f"{plan.field}.{key}",
                    errno=errno.EEXIST,
                )
    return bridges


def _create_pair(
    host: IPRoute,
    inner: IPRoute,
    plan: VethPlan,
    netns_fd: int,
    bridges: dict[str, int],
    owned: HostLinks,
) -> None:
    mtu = {"mtu": plan.mtu} if plan.mtu is not None else {}
    # The peer is created directly inside the container: it never appears on the host.
    with _doing(plan.field, f"creating veth {plan.host_name} (container end {plan.name})"):
        host.link(
            "add",
            ifname=plan.host_name,
            kind="veth",
            peer={"ifname": plan.name, "net_ns_fd": netns_fd, **mtu},
            **mtu,
        )
        found = host.link_lookup(ifname=plan.host_name)
    if not found:  # only if someone deleted it at once: nothing of ours is left
        raise NetworkError(f"{plan.host_name} vanished after its creation", field=plan.field)
    index = found[0]
    owned.links.append((index, plan.host_name))

    if plan.bridge is not None:
        with _doing(f"{plan.field}.bridge", f"attaching {plan.host_name} to {plan.bridge}"):
            host.link("set", index=index, master=bridges[plan.bridge])
    for address, prefix in plan.host_addresses:
        with _doing(
            f"{plan.field}.hostAddresses", f"adding {address}/{prefix} to {plan.host_name}"
        ):
            host.addr(
                "add", index=index, address=address, prefixlen=prefix, **_address_options(address)
            )
    with _doing(plan.field, f"bringing {plan.host_name} up"):
        host.link("set", index=index, state="up")

    with _doing(f"{plan.field}.name", f"looking up {plan.name} in the container"):
        found = inner.link_lookup(ifname=plan.name)
    if not found:  # the container died and took its netns (and our peer) with it
        raise NetworkError(f"{plan.name} is gone from the container", field=f"{plan.field}.name")
    inner_index = found[0]
    for address, prefix in plan.addresses:
        with _doing(f"{plan.field}.addresses", f"adding {address}/{prefix} to {plan.name}"):
            inner.addr(
                "add",
                index=inner_index,
                address=address,
                prefixlen=prefix,
                **_address_options(address),
            )
    with _doing(plan.field, f"bringing {plan.name} up"):
        inner.link("set", index=inner_index, state="up")  # IPv4 routes need the link up
    for gateway in plan.gateways:
        v6 = ipaddress.ip_address(gateway).version == 6
        with _doing(f"{plan.field}.gateways", f"adding the default route via {gateway}"):
            inner.route(
                "add",
                dst="::/0" if v6 else "0.0.0.0/0",
                gateway=gateway,
                oif=inner_index,
                family=socket.AF_INET6 if v6 else socket.AF_INET,
            )


def _delete(host: IPRoute, owned: HostLinks) -> list[str]:
    """Delete what ``owned`` records; return the problems, keeping those links recorded."""
    problems: list[str] = []
    for index, name in reversed(list(owned.links)):
        try:
            links = host.get_links(index)
            if links and links[0].get_attr("IFLA_IFNAME") == name:
                host.link("del", index=index)
        except _netlink_error() as exc:
            code = getattr(exc, "code", 0)
            if code != errno.ENODEV:  # ENODEV: the kernel removed it with the netns
                problems.append(f"deleting {name} (ifindex {index}): {os.strerror(code)}")
                continue
        owned.links.remove((index, name))
    return problems


def setup_veths(plans: Sequence[VethPlan], netns_fd: int, owned: HostLinks) -> None:
    """Create and configure every veth of ``plans``; on failure remove what was made."""
    from pyroute2 import IPRoute

    inner_socket = _netlink_socket_in(netns_fd)
    try:
        with IPRoute() as host, IPRoute(use_socket=inner_socket) as inner:
            bridges = _preflight(host, inner, plans)
            try:
                for plan in plans:
                    _create_pair(host, inner, plan, netns_fd, bridges, owned)
            except BaseException as exc:
                for problem in _delete(host, owned):
                    exc.add_note(f"cleanup: {problem}")
                raise
    finally:
        inner_socket.close()


def delete_veths(owned: HostLinks) -> list[str]:
    """Remove the host ends ``owned`` records (their peers go with them); problems."""
    if not owned.links:
        return []
    from pyroute2 import IPRoute

    with IPRoute() as host:
        return _delete(host, owned)
