"""The asyncinit.network extension: shape, validation with JSON paths, host-side checks."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest

from asyncinit.config import ConfigError, Veth, spec_from_dict, spec_to_dict
from asyncinit.config._network import interface_name_error
from asyncinit.network._plan import GENERATED_PREFIX
from asyncinit.parent._compile import compile_spec
from tests.support.configs import base_config


def with_veths(*veths: dict[str, Any], config: dict[str, Any] | None = None) -> dict[str, Any]:
    config = config or base_config()
    config["asyncinit"] = {"network": {"veth": list(veths)}}
    return config


def errors(*veths: dict[str, Any], config: dict[str, Any] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        spec_from_dict(with_veths(*veths, config=config))
    return caught.value.errors


FULL = {
    "name": "eth1",
    "hostName": "aihost0",
    "addresses": ["10.231.0.2/24", "fd61:6169::2/64"],
    "gateways": ["10.231.0.1", "fd61:6169::1"],
    "mtu": 1400,
    "hostAddresses": ["10.231.0.1/24", "fd61:6169::1/64"],
}


def test_a_full_veth_loads_and_round_trips() -> None:
    spec = spec_from_dict(with_veths(FULL))
    assert spec.asyncinit is not None
    assert spec.asyncinit.network is not None
    (veth,) = spec.asyncinit.network.veth
    assert veth == Veth(
        name="eth1",
        host_name="aihost0",
        addresses=("10.231.0.2/24", "fd61:6169::2/64"),
        gateways=("10.231.0.1", "fd61:6169::1"),
        mtu=1400,
        host_addresses=("10.231.0.1/24", "fd61:6169::1/64"),
    )
    assert spec_to_dict(spec)["asyncinit"] == {"network": {"veth": [FULL]}}


def test_defaults_container_end_is_eth0() -> None:
    spec = spec_from_dict(with_veths({}))
    assert spec.asyncinit is not None
    assert spec.asyncinit.network is not None
    assert spec.asyncinit.network.veth[0].name == "eth0"


def test_unknown_keys_in_our_section_are_errors() -> None:
    """Unlike OCI fields: a typo would silently drop an address."""
    config = with_veths({"adresses": ["10.0.0.2/24"]})
    config["asyncinit"]["network"]["bridges"] = []
    config["asyncinit"]["dns"] = {}
    with pytest.raises(ConfigError) as caught:
        spec_from_dict(config)
    assert sorted(caught.value.errors) == [
        "asyncinit.dns: unknown field",
        "asyncinit.network.bridges: unknown field",
        "asyncinit.network.veth[0].adresses: unknown field",
    ]


def test_types_are_strict() -> None:
    assert errors({"mtu": "1500", "addresses": "10.0.0.2/24"}) == [
        'asyncinit.network.veth[0].addresses: expected an array, got "10.0.0.2/24"',
        'asyncinit.network.veth[0].mtu: expected an integer, got "1500"',
    ]


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("", "must not be empty"),
        ("a" * 16, "longer than 15 bytes (16)"),
        ("é" * 8, "longer than 15 bytes (16)"),  # bytes, not characters
        ("eth/0", 'must not contain "/"'),
        ("eth:0", 'must not contain ":"'),
        ("eth 0", 'must not contain " "'),
        ("eth\t0", 'must not contain "\\t"'),
        ("aià", "must not contain byte 0xa0"),  # the kernel's isspace(0xa0) is true
        (".", "not a valid interface name"),
        ("..", "not a valid interface name"),
    ],
)
def test_interface_names_follow_the_kernel(name: str, problem: str) -> None:
    reason = interface_name_error(name)
    assert reason is not None
    assert problem in reason
    for key in ("name", "hostName", "bridge"):
        (error,) = errors({key: name})
        assert error.startswith(f"asyncinit.network.veth[0].{key}: ")
        assert problem in error


@pytest.mark.parametrize("name", ["a" * 15, "eth0", "veth-é", "br_0.100"])
def test_valid_interface_names(name: str) -> None:
    assert interface_name_error(name) is None


@pytest.mark.parametrize(
    ("veth", "expected"),
    [
        ({"addresses": ["10.0.0.2"]}, 'addresses[0]: "10.0.0.2": needs a prefix length'),
        ({"addresses": ["10.0.0.300/24"]}, 'addresses[0]: "10.0.0.300/24": '),
        ({"addresses": ["10.0.0.2/33"]}, 'addresses[0]: "10.0.0.2/33": '),
        ({"addresses": ["fd00::g/64"]}, 'addresses[0]: "fd00::g/64": '),
        ({"addresses": ["224.0.0.1/4"]}, "must be a unicast address"),
        ({"addresses": ["127.0.0.2/8"]}, "must be a unicast address"),
        ({"addresses": ["10.0.0.255/24"]}, "broadcast address of 10.0.0.0/24"),
        ({"addresses": ["10.0.0.2/24", "10.0.0.2/16"]}, "addresses[1]: duplicate address"),
        ({"hostAddresses": ["nonsense/24"]}, 'hostAddresses[0]: "nonsense/24": '),
        ({"mtu": 67}, "mtu: must be between 68 and 65535, got 67"),
        ({"mtu": 65536}, "mtu: must be between 68 and 65535"),
        ({"mtu": 1000, "addresses": ["fd00:1::2/64"]}, "mtu: IPv6 needs at least 1280"),
        ({"name": "lo"}, 'name: "lo" already exists'),
        (
            {"bridge": "aibr0", "hostAddresses": ["10.0.0.1/24"]},
            "hostAddresses: not allowed with bridge",
        ),
        ({"gateways": ["10.0.0.1"]}, "gateways[0]: no IPv4 address"),
        (
            {"addresses": ["10.0.0.2/24"], "gateways": ["10.0.1.1"]},
            "gateways[0]: 10.0.1.1 is not in 10.0.0.0/24",
        ),
        (
            {"addresses": ["10.0.0.2/24"], "gateways": ["10.0.0.2"]},
            "is this interface's own address",
        ),
        (
            {"addresses": ["10.0.0.2/24"], "gateways": ["10.0.0.1", "10.0.0.3"]},
            "gateways[1]: a second IPv4 gateway",
        ),
        ({"addresses": ["10.0.0.2/24"], "gateways": ["bogus"]}, 'gateways[0]: "bogus": '),
    ],
)
def test_bad_veth_fields_name_their_path(veth: dict[str, Any], expected: str) -> None:
    (error,) = errors(veth)
    assert error.startswith("asyncinit.network.veth[0].")
    assert expected in error


def test_good_address_forms_are_accepted() -> None:
    spec_from_dict(
        with_veths(
            {
                "addresses": ["10.0.0.0/31", "10.0.1.1/32", "fd00:1::2/64"],
                "gateways": ["10.0.0.1", "fe80::1"],  # /31 peer; IPv6 link-local gateway
            }
        )
    )


def test_duplicates_across_veths() -> None:
    assert errors(
        {"hostName": "aih0", "addresses": ["10.0.0.2/24"], "gateways": ["10.0.0.1"]},
        {"hostName": "aih0", "addresses": ["10.0.1.2/24"], "gateways": ["10.0.1.1"]},
    ) == [
        'asyncinit.network.veth[1].name: duplicate container interface "eth0" '
        "(see asyncinit.network.veth[0].name)",
        'asyncinit.network.veth[1].hostName: duplicate host interface "aih0" '
        "(see asyncinit.network.veth[0].hostName)",
        "asyncinit.network.veth[1].gateways: a second IPv4 default route "
        "(see asyncinit.network.veth[0].gateways)",
    ]


def test_veth_needs_a_network_namespace() -> None:
    config = base_config()
    config["linux"]["namespaces"] = [
        ns for ns in config["linux"]["namespaces"] if ns["type"] != "network"
    ]
    assert errors({}, config=config) == [
        "asyncinit.network.veth: requires a network namespace in linux.namespaces "
        "(without one the container shares the host's network)"
    ]


def test_veth_refused_when_joining_the_host_netns() -> None:
    config = base_config()
    for ns in config["linux"]["namespaces"]:
        if ns["type"] == "network":
            ns["path"] = "/proc/self/ns/net"
    assert errors({}, config=config) == [
        "asyncinit.network.veth: not allowed when joining the host's network namespace"
    ]


def test_every_problem_is_reported_at_once() -> None:
    found = errors(
        {"name": "x" * 20, "addresses": ["bad"], "mtu": 1},
        {"hostName": "a:b", "gateways": ["10.0.0.1"]},
    )
    assert [e.split(":")[0] for e in found] == [
        "asyncinit.network.veth[0].name",
        "asyncinit.network.veth[0].addresses[0]",
        "asyncinit.network.veth[0].mtu",
        "asyncinit.network.veth[1].hostName",
        "asyncinit.network.veth[1].gateways[0]",
    ]


def test_config_without_network_pays_nothing() -> None:
    spec = spec_from_dict(base_config())
    assert spec.asyncinit is None
    assert "asyncinit" not in spec_to_dict(spec)


# Host-side checks at compile time: a ConfigError before anything starts.


def test_missing_bridge_and_taken_host_name_are_config_errors(tmp_path: Path) -> None:
    (tmp_path / "rootfs").mkdir()
    taken = socket.if_indextoname(1)  # "lo": certainly there
    config = with_veths(
        {"bridge": "aimissingbr0"},
        {"name": "eth1", "hostName": taken},
    )
    config["root"]["path"] = "rootfs"
    spec = spec_from_dict(config)
    with pytest.raises(ConfigError) as caught:
        compile_spec(spec, tmp_path, "c1")
    assert caught.value.errors == [
        "asyncinit.network.veth[0].bridge: aimissingbr0: no such interface on the host",
        f"asyncinit.network.veth[1].hostName: {taken}: already exists on the host",
    ]


def test_generated_host_names_fit_ifnamsiz(tmp_path: Path) -> None:
    (tmp_path / "rootfs").mkdir()
    config = with_veths({}, {"name": "eth1"}, {"name": "eth2", "hostName": "aichosen"})
    config["root"]["path"] = "rootfs"
    compiled = compile_spec(spec_from_dict(config), tmp_path, "c1")
    names = [plan.host_name for plan in compiled.network]
    assert names[2] == "aichosen"
    for name in names[:2]:
        assert name.startswith(GENERATED_PREFIX)
        assert len(name.encode()) == 15
        assert interface_name_error(name) is None
    assert len(set(names)) == 3
    assert [plan.field for plan in compiled.network] == [
        f"asyncinit.network.veth[{i}]" for i in range(3)
    ]
    assert compiled.network[0].addresses == ()
