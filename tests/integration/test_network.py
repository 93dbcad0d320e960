"""Integration: container networking (loopback, veth, bridges, joined and host netns).

Every interface here is made by the test or by asyncinit for it, named with a
per-test prefix ("ai" + hex), and carries 10.x / fd61:: addresses that exist
only on these interfaces: traffic never leaves the machine.  ``links`` asserts
that no interface of ours is left on the host after each test.
"""

from __future__ import annotations

import errno
import os
import secrets
import signal
import socket
import subprocess
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import pytest

import asyncinit
from asyncinit import PIPE, InitError, NetworkError, spawn
from asyncinit.network._plan import VethPlan
from asyncinit.network._veth import HostLinks, _netlink_socket_in, setup_veths
from tests.support.containers import MakeConfig, needs_root, read_all, run

pytestmark = [pytest.mark.integration, pytest.mark.anyio, needs_root]

def host_links() -> set[str]:
    return {name for _, name in socket.if_nameindex()}


class Links:
    """Unique names for one test; removes the test's own interfaces at the end.

    pyroute2's sync IPRoute runs its own asyncio loop: from async tests, call the
    methods through ``anyio.to_thread.run_sync``.
    """

    def __init__(self) -> None:
        self.prefix = "ai" + secrets.token_hex(3)  # 8 bytes: 7 left for a suffix
        self.subnet = f"10.{secrets.randbelow(50) + 200}.{secrets.randbelow(256)}"
        # canonical form (no leading zeros), as `ip` prints it
        self.subnet6 = f"fd61:{secrets.randbelow(0xFFFF) + 1:x}:{secrets.randbelow(0xFFFF) + 1:x}:"
        self.made: list[str] = []

    def name(self, suffix: str) -> str:
        name = self.prefix + suffix
        assert len(name.encode()) <= 15
        return name

    def bridge(self) -> str:
        from pyroute2 import IPRoute

        name = self.name("br")
        with IPRoute() as ipr:
            ipr.link("add", ifname=name, kind="bridge")
            ipr.link("set", index=ipr.link_lookup(ifname=name)[0], state="up")
        self.made.append(name)
        return name

    def veth_pair(self) -> str:
        """A plain veth pair on the host (for a "bridge" that is not one)."""
        from pyroute2 import IPRoute

        name = self.name("x0")
        with IPRoute() as ipr:
            ipr.link("add", ifname=name, kind="veth", peer={"ifname": self.name("x1")})
        self.made.append(name)
        return name

    def remove_made(self) -> None:
        from pyroute2 import IPRoute, NetlinkError

        with IPRoute() as ipr:
            for name in self.made:
                for index in ipr.link_lookup(ifname=name):
                    try:
                        ipr.link("del", index=index)
                    except NetlinkError as exc:
                        # A veth whose peer's namespace was just torn down can vanish
                        # between the lookup and the delete (the holder closes first).
                        if exc.code != errno.ENODEV:
                            raise


@pytest.fixture
def links() -> Iterator[Links]:
    """Fails the test if it leaves any "ai*" interface on the host (ours or generated)."""
    before = {name for name in host_links() if name.startswith("ai")}
    made = Links()
    yield made
    made.remove_made()
    leftover = {name for name in host_links() if name.startswith("ai")} - before
    if leftover:  # clean up anyway, so one failure does not cascade
        from pyroute2 import IPRoute

        with IPRoute() as ipr:
            for name in leftover:
                for index in ipr.link_lookup(ifname=name):
                    ipr.link("del", index=index)
    assert not leftover, f"interfaces left on the host: {sorted(leftover)}"


def with_network(config: dict[str, Any], *veths: dict[str, Any]) -> dict[str, Any]:
    config["asyncinit"] = {"network": {"veth": list(veths)}}
    caps = config["process"]["capabilities"]
    for kind in ("bounding", "effective", "permitted"):
        caps[kind].append("CAP_NET_RAW")  # busybox ping opens a raw socket
    return config


class NetnsHolder:
    """A network namespace held by a process we start (`unshare --net sleep`)."""

    def __init__(self, setup: str = "") -> None:
        script = f"{setup} echo ready; exec sleep 600"
        self.process = subprocess.Popen(
            ["unshare", "--net", "sh", "-c", script], stdout=subprocess.PIPE, text=True
        )
        assert self.process.stdout is not None
        assert self.process.stdout.readline().strip() == "ready"
        self.path = f"/proc/{self.process.pid}/ns/net"

    def links(self) -> set[str]:
        from pyroute2 import IPRoute

        fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            sock = _netlink_socket_in(fd)
        finally:
            os.close(fd)
        with sock, IPRoute(use_socket=sock) as ipr:
            return {link.get_attr("IFLA_IFNAME") for link in ipr.get_links()}

    def close(self) -> None:
        self.process.kill()
        self.process.wait()
        assert self.process.stdout is not None
        self.process.stdout.close()


@pytest.fixture
def netns_holder() -> Iterator[Callable[..., NetnsHolder]]:
    holders: list[NetnsHolder] = []

    def make(setup: str = "") -> NetnsHolder:
        holders.append(NetnsHolder(setup))
        return holders[-1]

    yield make
    for holder in holders:
        holder.close()


def join_netns(config: dict[str, Any], path: str) -> dict[str, Any]:
    for ns in config["linux"]["namespaces"]:
        if ns["type"] == "network":
            ns["path"] = path
    return config


# Loopback


async def test_loopback_is_up_before_the_workload(make_config: MakeConfig) -> None:
    config = with_network(
        make_config("sh", "-c", "cat /sys/class/net/lo/flags; ping -c1 -W2 127.0.0.1 >/dev/null")
    )
    del config["asyncinit"]  # loopback alone: no veth, no pyroute2
    code, out, err = await run(config)
    assert code == 0, err  # the ping got its answer over lo
    assert int(out.split()[0], 16) & 0x1  # IFF_UP


# veth to the host


@pytest.mark.parametrize("init_backend", ["asyncio", "trio"])
async def test_container_pings_the_host_end(
    make_config: MakeConfig, links: Links, anyio_backend: str, init_backend: str
) -> None:
    net, net6 = links.subnet, links.subnet6
    host_name = links.name("h0")
    # operstate follows the carrier through the kernel's linkwatch, which may lag
    # a moment behind the link being set up (seen on 6.1 under emulation).
    script = (
        "for i in $(seq 50); do [ $(cat /sys/class/net/eth0/operstate) = up ] && break; "
        "sleep 0.1; done; "
        "cat /sys/class/net/eth0/mtu /sys/class/net/eth0/operstate; ip -o addr show dev eth0; "
        f"ip route; ip -6 route; ping -c1 -W2 {net}.1 && ping -c1 -W2 {net6}:1 && echo pinged"
    )
    config = with_network(
        make_config("sh", "-c", script),
        {
            "hostName": host_name,
            "addresses": [f"{net}.2/24", f"{net6}:2/64"],
            "gateways": [f"{net}.1", f"{net6}:1"],
            "mtu": 1400,
            "hostAddresses": [f"{net}.1/24", f"{net6}:1/64"],
        },
    )
    async with await spawn(config, stdout=PIPE, stderr=PIPE, backend=init_backend) as container:
        assert container.network is not None
        assert container.network.host_interfaces == (host_name,)
        assert host_name in host_links()  # the host end exists while the container runs
        with open(f"/sys/class/net/{host_name}/mtu") as f:
            assert f.read().strip() == "1400"
        out = await read_all(container.stdout)
        err = await read_all(container.stderr)
        assert await container.wait() == 0, out + err
    assert container.warnings == []
    lines = out.splitlines()
    assert lines[:2] == ["1400", "up"]
    assert f"inet {net}.2/24" in out
    assert f"inet6 {net6}:2/64" in out
    assert f"default via {net}.1 dev eth0" in out
    assert f"default via {net6}:1 dev eth0" in out
    assert "pinged" in out
    assert host_name not in host_links()  # removed at once, not when the kernel gets to it


async def test_generated_host_name_is_removed(make_config: MakeConfig, links: Links) -> None:
    # A workload that waits: once PID 1 exits, the kernel takes the veth with its namespace.
    config = with_network(make_config("sleep", "60"), {"addresses": [f"{links.subnet}.2/24"]})
    async with await spawn(config) as container:
        assert container.network is not None
        (host_name,) = container.network.host_interfaces
        assert host_name.startswith("ai")
        assert host_name in host_links()
        container.kill()
        assert await container.wait() == 128 + signal.SIGKILL
    assert host_name not in host_links()


async def test_two_containers_on_a_bridge_ping_each_other(
    make_config: MakeConfig, links: Links
) -> None:
    bridge = await anyio.to_thread.run_sync(links.bridge)
    net = links.subnet
    server = with_network(
        make_config("sh", "-c", "echo ready; exec sleep 60"),
        {"hostName": links.name("a"), "addresses": [f"{net}.2/24"], "bridge": bridge},
    )
    client = with_network(
        make_config("ping", "-c1", "-W2", f"{net}.2"),
        {"hostName": links.name("b"), "addresses": [f"{net}.3/24"], "bridge": bridge},
    )
    async with await spawn(server, stdout=PIPE) as first:
        assert first.stdout is not None
        assert (await first.stdout.receive()).strip() == b"ready"
        with open(f"/sys/class/net/{links.name('a')}/master/ifindex") as f:
            assert int(f.read()) == socket.if_nametoindex(bridge)
        code, out, err = await run(client)
        assert code == 0, out + err
        assert "1 packets received" in out
    assert not {links.name("a"), links.name("b")} & host_links()
    assert os.listdir(f"/sys/class/net/{bridge}/brif") == []  # the bridge itself stays


# Namespaces: joined by path, the host's


async def test_join_network_namespace_by_path(
    make_config: MakeConfig, netns_holder: Callable[..., NetnsHolder]
) -> None:
    holder = netns_holder()
    config = join_netns(
        make_config("sh", "-c", "readlink /proc/self/ns/net; cat /sys/class/net/lo/flags"),
        holder.path,
    )
    code, out, err = await run(config)
    assert code == 0, err
    ns, flags = out.split()
    assert ns == os.readlink(holder.path)
    assert ns != os.readlink("/proc/self/ns/net")
    assert not int(flags, 16) & 0x1  # lo is brought up only in a netns we create (as runc)


async def test_veth_into_a_joined_netns_is_removed_from_it(
    make_config: MakeConfig, links: Links, netns_holder: Callable[..., NetnsHolder]
) -> None:
    """The joined netns outlives the container: only our teardown removes the veth."""
    holder = netns_holder()
    host_name = links.name("h0")
    config = join_netns(
        with_network(
            make_config("cat", "/sys/class/net/eth7/operstate"),
            {"name": "eth7", "hostName": host_name, "addresses": [f"{links.subnet}.2/24"]},
        ),
        holder.path,
    )
    code, out, err = await run(config)
    assert (code, out.strip()) == (0, "up"), err
    assert await anyio.to_thread.run_sync(holder.links) == {"lo"}
    assert host_name not in host_links()


async def test_host_network_when_no_netns_is_asked_for(make_config: MakeConfig) -> None:
    config = make_config("readlink", "/proc/self/ns/net")
    config["linux"]["namespaces"] = [
        ns for ns in config["linux"]["namespaces"] if ns["type"] != "network"
    ]
    code, out, err = await run(config)
    assert code == 0, err
    assert out.strip() == os.readlink("/proc/self/ns/net")


# Failures: nothing is left behind


async def test_not_a_bridge_fails_before_creating_anything(
    make_config: MakeConfig, links: Links
) -> None:
    impostor = await anyio.to_thread.run_sync(links.veth_pair)
    config = with_network(
        make_config("true"),
        {"hostName": links.name("ok"), "addresses": [f"{links.subnet}.2/24"]},
        {"name": "eth1", "hostName": links.name("h1"), "bridge": impostor},
    )
    before = host_links()
    with pytest.raises(NetworkError) as caught:
        await spawn(config)
    assert caught.value.field == "asyncinit.network.veth[1].bridge"
    assert f"{impostor}: not a bridge (kind veth)" in str(caught.value)
    assert host_links() == before


async def test_container_end_name_taken_in_joined_netns(
    make_config: MakeConfig, links: Links, netns_holder: Callable[..., NetnsHolder]
) -> None:
    holder = netns_holder()
    config = join_netns(
        with_network(make_config("true"), {"hostName": links.name("h0")}), holder.path
    )

    # the holder's netns gets an "eth0" first: a veth whose other end stays on the host
    def occupy_eth0() -> None:
        from pyroute2 import IPRoute

        with IPRoute() as ipr:
            ipr.link(
                "add",
                ifname=links.name("p0"),
                kind="veth",
                peer={"ifname": "eth0", "net_ns_pid": holder.process.pid},
            )
        links.made.append(links.name("p0"))

    await anyio.to_thread.run_sync(occupy_eth0)
    with pytest.raises(NetworkError) as caught:
        await spawn(config)
    assert caught.value.field == "asyncinit.network.veth[0].name"
    assert caught.value.errno == errno.EEXIST
    assert "eth0: already exists in the container's network namespace" in str(caught.value)
    assert links.name("h0") not in host_links()


async def test_failure_half_way_removes_what_was_created(
    make_config: MakeConfig, links: Links, netns_holder: Callable[..., NetnsHolder]
) -> None:
    """The second veth's IPv6 address fails (IPv6 is disabled in the joined netns)
    after the first veth is complete and the second pair exists."""
    holder = netns_holder(
        "echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6;"
        " echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6;"
    )
    config = join_netns(
        with_network(
            make_config("true"),
            {"hostName": links.name("h0"), "addresses": [f"{links.subnet}.2/24"]},
            {
                "name": "eth1",
                "hostName": links.name("h1"),
                "addresses": [f"{links.subnet}.6/30", f"{links.subnet6}:6/64"],
            },
        ),
        holder.path,
    )
    with pytest.raises(NetworkError) as caught:
        await spawn(config)
    error = caught.value
    assert error.field == "asyncinit.network.veth[1].addresses"
    assert error.errno is not None
    assert f"adding {links.subnet6}:6/64 to eth1" in str(error)
    assert await anyio.to_thread.run_sync(holder.links) == {
        "lo"
    }  # both container ends are gone with their pairs


async def test_setup_veths_rolls_back_by_itself(
    links: Links, netns_holder: Callable[..., NetnsHolder]
) -> None:
    """The same half-way failure without spawn(): setup_veths leaves nothing to tear down."""
    holder = netns_holder("echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6;")
    plans = (
        VethPlan(field="v[0]", name="eth0", host_name=links.name("h0")),
        VethPlan(
            field="v[1]",
            name="eth1",
            host_name=links.name("h1"),
            addresses=((f"{links.subnet6}:2", 64),),
        ),
    )
    owned = HostLinks()
    fd = os.open(holder.path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        with pytest.raises(NetworkError) as caught:
            await anyio.to_thread.run_sync(setup_veths, plans, fd, owned)
    finally:
        os.close(fd)
    assert caught.value.field == "v[1].addresses"
    assert owned.links == []
    assert await anyio.to_thread.run_sync(holder.links) == {"lo"}


async def test_failed_start_after_network_setup_leaves_nothing(
    make_config: MakeConfig, links: Links
) -> None:
    config = with_network(
        make_config("/no/such/binary"),
        {"hostName": links.name("h0"), "addresses": [f"{links.subnet}.2/24"]},
    )
    with pytest.raises(InitError) as caught:
        await spawn(config)
    assert caught.value.errno == errno.ENOENT


async def test_cancelled_spawn_removes_the_veth(make_config: MakeConfig, links: Links) -> None:
    host_name = links.name("h0")
    config = with_network(
        make_config("true"),
        {"hostName": host_name, "addresses": [f"{links.subnet}.2/24"]},
    )
    seen_during_hook: list[bool] = []
    hook_started = anyio.Event()

    async def slow_hook(container: asyncinit.Container) -> None:
        seen_during_hook.append(host_name in host_links())
        hook_started.set()
        await anyio.sleep(30)

    with anyio.move_on_after(10) as scope:
        async with anyio.create_task_group() as tg:

            async def start() -> None:
                await spawn(config, hooks=asyncinit.PythonHooks(create_runtime=[slow_hook]))

            tg.start_soon(start)
            await hook_started.wait()
            tg.cancel_scope.cancel()
    assert not scope.cancelled_caught
    assert seen_during_hook == [True]  # the network was set up before the hooks ran
    assert host_name not in host_links()


async def test_cancelled_during_the_setup_thread(
    make_config: MakeConfig, links: Links, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cancellation while the worker thread still runs: it finishes, then teardown runs."""
    import threading
    import time

    from asyncinit.parent import _network

    host_name = links.name("h0")
    created = threading.Event()

    def slow_setup(*args: Any) -> None:
        setup_veths(*args)
        created.set()
        time.sleep(0.5)  # still in the thread when the cancellation arrives

    monkeypatch.setattr(_network, "setup_veths", slow_setup)
    config = with_network(
        make_config("true"), {"hostName": host_name, "addresses": [f"{links.subnet}.2/24"]}
    )
    async with anyio.create_task_group() as tg:

        async def start() -> None:
            await spawn(config)
            pytest.fail("spawn() should have been cancelled")

        tg.start_soon(start)
        await anyio.to_thread.run_sync(created.wait)
        assert host_name in host_links()
        tg.cancel_scope.cancel()
    assert host_name not in host_links()


async def test_oci_hooks_see_the_network(
    make_config: MakeConfig, links: Links, tmp_path: Any
) -> None:
    """Setup runs before prestart/createRuntime hooks, which may rely on the host end."""
    host_name = links.name("h0")
    seen = tmp_path / "seen"
    hook = {
        "path": "/bin/sh",
        "args": ["sh", "-c", f"cat /sys/class/net/{host_name}/operstate > {seen}"],
    }
    config = with_network(
        make_config("true"), {"hostName": host_name, "addresses": [f"{links.subnet}.2/24"]}
    )
    config["hooks"] = {"createRuntime": [hook]}
    code, _, err = await run(config)
    assert code == 0, err
    assert seen.read_text().strip() == "up"  # both ends are up by then
