"""Validation of the ``asyncinit.network`` extension (docs/network.md).

Pure stdlib (``ipaddress``): no pyroute2 here, so loading a config stays cheap.
Everything that can be decided from the config alone is checked here, so a bad
network is refused before any namespace or interface exists; what depends on
the host (does the bridge exist?) is checked when the spec is compiled.
"""

from __future__ import annotations

import ipaddress
import os
from typing import Final

from .._lines import show
from ._model import Spec, Veth

__all__ = ["IFNAMSIZ", "check_network", "interface_name_error"]

#: The kernel's IFNAMSIZ includes the terminating NUL: names have at most 15 bytes.
IFNAMSIZ: Final = 16
#: Bytes the kernel's isspace() matches (lib/ctype.c marks 0xA0 as a space too).
_KERNEL_SPACES: Final = frozenset(b" \t\n\v\f\r\xa0")
_MTU_MIN: Final = 68  # IPv4's minimum (RFC 791); the veth driver refuses less
_MTU_MIN_IPV6: Final = 1280  # RFC 8200: the kernel disables IPv6 on a smaller link
_MTU_MAX: Final = 65535  # the veth driver's max_mtu

Interface = ipaddress.IPv4Interface | ipaddress.IPv6Interface
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def interface_name_error(name: str) -> str | None:
    """Why the kernel's dev_valid_name() would refuse ``name``, or None.

    Checked up front because the kernel's answer (EINVAL, or a silently
    truncated name from tools that cut at 15 bytes) names neither the field nor
    the rule.
    """
    raw = name.encode("utf-8", "surrogateescape")
    if not raw:
        return "must not be empty"
    if len(raw) >= IFNAMSIZ:
        return f"longer than {IFNAMSIZ - 1} bytes ({len(raw)})"
    if name in (".", ".."):
        return f"{show(name)} is not a valid interface name"
    bad = sorted({b for b in raw if b in b"/:\0" or b in _KERNEL_SPACES})
    if bad:
        shown = [
            show(chr(b)) if b < 0x80 else f"byte 0x{b:02x} (a space to the kernel)" for b in bad
        ]
        return f"must not contain {', '.join(shown)}"
    return None


def _interface(value: str) -> Interface | str:
    """A CIDR address, or the reason it is not one."""
    if "/" not in value:
        return "needs a prefix length (address/prefix, e.g. 10.0.0.2/24)"
    try:
        iface = ipaddress.ip_interface(value)
    except ValueError as exc:
        return str(exc)
    ip = iface.ip
    if ip.is_unspecified or ip.is_multicast or ip.is_loopback:
        return "must be a unicast address (not unspecified, multicast or loopback)"
    network = iface.network
    if iface.version == 4 and network.prefixlen < 31 and ip == network.broadcast_address:
        return f"is the broadcast address of {network}"
    return iface


def _addresses(errors: list[str], path: str, values: tuple[str, ...]) -> list[Interface]:
    parsed: list[Interface] = []
    seen: set[Address] = set()
    for i, value in enumerate(values):
        result = _interface(value)
        if isinstance(result, str):
            errors.append(f"{path}[{i}]: {show(value)}: {result}")
        elif result.ip in seen:
            errors.append(f"{path}[{i}]: duplicate address {result.ip}")
        else:
            seen.add(result.ip)
            parsed.append(result)
    return parsed


def _gateways(
    errors: list[str], path: str, veth: Veth, addresses: list[Interface]
) -> dict[int, Address]:
    """Each gateway must be reachable on-link: inside one of this end's networks
    (or IPv6 link-local), else the kernel refuses the route with ENETUNREACH."""
    by_family: dict[int, Address] = {}
    for i, value in enumerate(veth.gateways):
        where = f"{path}.gateways[{i}]"
        try:
            gateway = ipaddress.ip_address(value)
        except ValueError as exc:
            errors.append(f"{where}: {show(value)}: {exc}")
            continue
        family = [a for a in addresses if a.version == gateway.version]
        if gateway.version in by_family:
            errors.append(f"{where}: a second IPv{gateway.version} gateway (one default route)")
        elif gateway.is_unspecified or gateway.is_multicast or gateway.is_loopback:
            errors.append(f"{where}: {gateway} cannot be a gateway")
        elif not family:
            errors.append(f"{where}: no IPv{gateway.version} address in {path}.addresses")
        elif any(a.ip == gateway for a in family):
            errors.append(f"{where}: {gateway} is this interface's own address")
        elif not (
            any(gateway in a.network for a in family)
            or (gateway.version == 6 and gateway.is_link_local)
        ):
            networks = ", ".join(str(a.network) for a in family)
            errors.append(f"{where}: {gateway} is not in {networks} (not reachable on this link)")
        else:
            by_family[gateway.version] = gateway
    return by_family


def _check_veth(errors: list[str], path: str, veth: Veth) -> dict[int, Address]:
    for key, name in (("name", veth.name), ("hostName", veth.host_name), ("bridge", veth.bridge)):
        if name is not None and (problem := interface_name_error(name)) is not None:
            errors.append(f"{path}.{key}: {show(name)}: {problem}")
    if veth.name == "lo":
        errors.append(f'{path}.name: "lo" already exists in every network namespace')
    addresses = _addresses(errors, f"{path}.addresses", veth.addresses)
    host_addresses = _addresses(errors, f"{path}.hostAddresses", veth.host_addresses)
    if veth.bridge is not None and veth.host_addresses:
        errors.append(
            f"{path}.hostAddresses: not allowed with bridge (a bridge port's address "
            "belongs on the bridge itself)"
        )
    if veth.mtu is not None:
        if not _MTU_MIN <= veth.mtu <= _MTU_MAX:
            errors.append(f"{path}.mtu: must be between {_MTU_MIN} and {_MTU_MAX}, got {veth.mtu}")
        elif veth.mtu < _MTU_MIN_IPV6 and any(
            a.version == 6 for a in (*addresses, *host_addresses)
        ):
            errors.append(f"{path}.mtu: IPv6 needs at least {_MTU_MIN_IPV6}, got {veth.mtu}")
    return _gateways(errors, path, veth, addresses)


def is_host_netns(path: str) -> bool:
    """Whether ``path`` is the netns we run in (best effort, as runc's isHostNetNS)."""
    try:
        theirs, ours = os.stat(path), os.stat("/proc/self/ns/net")
    except OSError:
        return False  # joining it will fail later with a clearer error
    return (theirs.st_dev, theirs.st_ino) == (ours.st_dev, ours.st_ino)


def _network_namespace_error(spec: Spec) -> str | None:
    """A veth end moved into the host's own netns would just be a second host interface."""
    netns = spec.linux.namespace("network") if spec.linux is not None else None
    if netns is None:
        return (
            "requires a network namespace in linux.namespaces "
            "(without one the container shares the host's network)"
        )
    if netns.path is not None and is_host_netns(netns.path):
        return "not allowed when joining the host's network namespace"
    return None


def check_network(spec: Spec) -> list[str]:
    """Every problem of ``asyncinit.network``, as "json.path: message"."""
    network = spec.asyncinit.network if spec.asyncinit is not None else None
    if network is None or not network.veth:
        return []
    errors: list[str] = []
    if (problem := _network_namespace_error(spec)) is not None:
        errors.append(f"asyncinit.network.veth: {problem}")
    names: dict[tuple[str, str], str] = {}  # (side, name) -> where it was first given
    default_routes: dict[int, str] = {}
    for i, veth in enumerate(network.veth):
        path = f"asyncinit.network.veth[{i}]"
        for key, name, side in (
            ("name", veth.name, "container"),
            ("hostName", veth.host_name, "host"),
        ):
            if name is None:
                continue
            if (side, name) in names:
                errors.append(
                    f"{path}.{key}: duplicate {side} interface {show(name)} "
                    f"(see {names[side, name]})"
                )
            names.setdefault((side, name), f"{path}.{key}")
        for version in _check_veth(errors, path, veth):
            if version in default_routes:
                errors.append(
                    f"{path}.gateways: a second IPv{version} default route "
                    f"(see {default_routes[version]})"
                )
            default_routes.setdefault(version, f"{path}.gateways")
    return errors
