"""The parent's network plan: ``asyncinit.network`` resolved against the host.

Built by ``compile_spec`` from a validated spec (stdlib only: no pyroute2 until
a container really gets a veth).  Host-side facts are checked here so that a
bad name is a ConfigError before anything starts: the bridge must exist and the
host end's name must be free.  Whether the bridge really is a bridge needs
netlink, so that check waits for the setup, still before anything is created.
"""

from __future__ import annotations

import ipaddress
import secrets
import socket
from collections.abc import Sequence

import attrs

from ..config import Spec, Veth

__all__ = ["VethPlan", "plan_network"]

#: Prefix of generated host-end names ("ai" + 13 hex digits = 15 bytes, IFNAMSIZ - 1).
GENERATED_PREFIX = "ai"


@attrs.frozen
class VethPlan:
    """One veth pair to create, in the parent, at the createRuntime point."""

    #: config path of the entry, for error messages: asyncinit.network.veth[N]
    field: str
    name: str
    host_name: str
    #: (address, prefix length) pairs, IPv4 and IPv6 mixed
    addresses: tuple[tuple[str, int], ...] = ()
    gateways: tuple[str, ...] = ()
    mtu: int | None = None
    host_addresses: tuple[tuple[str, int], ...] = ()
    bridge: str | None = None


def _cidrs(values: Sequence[str]) -> tuple[tuple[str, int], ...]:
    parsed = (ipaddress.ip_interface(value) for value in values)
    return tuple((str(iface.ip), iface.network.prefixlen) for iface in parsed)


def _host_has(name: str) -> bool:
    """Whether our network namespace has an interface ``name`` (an ioctl, no netlink)."""
    try:
        socket.if_nametoindex(name)
    except OSError:
        return False
    return True


def _generated_name(taken: set[str]) -> str:
    while True:
        name = GENERATED_PREFIX + secrets.token_hex(7)[:13]
        if name not in taken and not _host_has(name):
            return name


def plan_network(spec: Spec, errors: list[str]) -> tuple[VethPlan, ...]:
    """The veths of a validated spec; host-side problems are appended to ``errors``."""
    network = spec.asyncinit.network if spec.asyncinit is not None else None
    veths: Sequence[Veth] = network.veth if network is not None else ()
    taken = {veth.host_name for veth in veths if veth.host_name is not None}
    plans: list[VethPlan] = []
    for index, veth in enumerate(veths):
        field = f"asyncinit.network.veth[{index}]"
        if veth.bridge is not None and not _host_has(veth.bridge):
            errors.append(f"{field}.bridge: {veth.bridge}: no such interface on the host")
        if veth.host_name is not None and _host_has(veth.host_name):
            errors.append(f"{field}.hostName: {veth.host_name}: already exists on the host")
        host_name = veth.host_name or _generated_name(taken)
        taken.add(host_name)
        plans.append(
            VethPlan(
                field=field,
                name=veth.name,
                host_name=host_name,
                addresses=_cidrs(veth.addresses),
                gateways=veth.gateways,
                mtu=veth.mtu,
                host_addresses=_cidrs(veth.host_addresses),
                bridge=veth.bridge,
            )
        )
    return tuple(plans)
