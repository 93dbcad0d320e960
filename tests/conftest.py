"""Shared fixtures: a busybox rootfs, runc's default config, host-leak checks.

Helpers live in tests/support (test modules import them from there, not from here).
Markers that shape these fixtures:

- ``caller_loop("asyncio")``: run the module's anyio tests on that caller loop only
  (the default is both asyncio and trio); the module says why.
- ``public_bundle``: ``bundle`` lies outside /tmp/pytest-of-root, reachable by other uids.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from asyncinit._demo import build_busybox_rootfs, busybox_is_static
from tests.support.cgroups import cgroup_dirs
from tests.support.configs import base_config
from tests.support.host import mount_table
from tests.support.hostile import public_bundle

if TYPE_CHECKING:
    from asyncinit.cgroups._host import Host

CALLER_LOOPS = ("asyncio", "trio")


@pytest.fixture(params=CALLER_LOOPS)
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.hookimpl(tryfirst=True)  # before pytest turns parametrize marks into calls
def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """``caller_loop(...)`` narrows ``anyio_backend`` to the loops it names."""
    marker = metafunc.definition.get_closest_marker("caller_loop")
    if marker is None or "anyio_backend" not in metafunc.fixturenames:
        return
    marks = metafunc.definition.iter_markers("parametrize")
    if any(_parametrizes(mark, "anyio_backend") for mark in marks):
        return  # the test names its loops itself
    assert set(marker.args) <= set(CALLER_LOOPS), marker.args
    metafunc.definition.add_marker(pytest.mark.parametrize("anyio_backend", marker.args))


def _parametrizes(mark: pytest.Mark, name: str) -> bool:
    names = mark.args[0]
    if isinstance(names, str):
        names = [part.strip() for part in names.split(",")]
    return name in names


@pytest.fixture(scope="session")
def busybox_image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A pristine busybox-static rootfs, built once per test session."""
    if not busybox_is_static():
        pytest.skip("busybox-static is not installed (apt-get install busybox-static)")
    image = tmp_path_factory.mktemp("image") / "rootfs"
    build_busybox_rootfs(image)
    return image


@pytest.fixture
def bundle(request: pytest.FixtureRequest, tmp_path: Path, busybox_image: Path) -> Iterator[Path]:
    """A bundle directory with a private copy of the rootfs (tests may change it)."""
    if request.node.get_closest_marker("public_bundle") is not None:
        with public_bundle(busybox_image) as path:
            yield path
        return
    shutil.copytree(busybox_image, tmp_path / "rootfs", symlinks=True)
    yield tmp_path


@pytest.fixture
def make_config(bundle: Path) -> Callable[..., dict[str, Any]]:
    def make(*args: str) -> dict[str, Any]:
        config = base_config(*args)
        config["root"]["path"] = str(bundle / "rootfs")
        return config

    return make


@pytest.fixture
def log(tmp_path: Path) -> Path:
    """A host directory every hook can write to; bind-mounted at /log in the container."""
    path = tmp_path / "log"
    path.mkdir()
    path.chmod(0o777)
    return path


@pytest.fixture
def no_cgroup_leak() -> Iterator[Host]:
    """The test leaves the cgroup trees exactly as it found them."""
    from asyncinit.cgroups import detect_host

    host = detect_host()
    before = cgroup_dirs(host)
    yield host
    after = cgroup_dirs(host)
    assert after == before, (
        f"cgroups left behind: {sorted(after - before)}; gone: {sorted(before - after)}"
    )


@pytest.fixture(autouse=True, scope="session")
def no_system_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """`asyncinit run` in tests talks to the daemon a test starts, never to a machine-wide one."""
    old = os.environ.get("ASYNCINIT_SOCKET")
    os.environ["ASYNCINIT_SOCKET"] = str(tmp_path_factory.mktemp("no-daemon") / "none.sock")
    yield
    if old is None:
        del os.environ["ASYNCINIT_SOCKET"]
    else:
        os.environ["ASYNCINIT_SOCKET"] = old


@pytest.fixture(autouse=True)
def host_unchanged(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every integration test leaves the host's mount table and cgroup trees as it found them."""
    if request.node.get_closest_marker("integration") is None:
        yield
        return
    from asyncinit.cgroups import detect_host

    host = detect_host()
    # The engines' tests share cgroups with their engine, whose own fixture removes them.
    check_cgroups = request.node.path.parent.name != "engines"
    before, cgroups_before = mount_table(), cgroup_dirs(host) if check_cgroups else set()
    yield
    assert mount_table() == before, "the host's mount table changed"
    cgroups_after = cgroup_dirs(host) if check_cgroups else set()
    assert cgroups_after == cgroups_before, (
        f"cgroups left behind: {sorted(cgroups_after - cgroups_before)}; "
        f"gone: {sorted(cgroups_before - cgroups_after)}"
    )
