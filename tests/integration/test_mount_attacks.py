"""Attacks on mount destinations: each must fail clearly or stay inside the rootfs.

The host side is watched in two ways: sentinel directories outside the rootfs
must stay empty (nothing created through a symlink), and a postmount command,
which runs in the init's mount namespace while the host's tree is still
visible there, fails the start if any mount landed on a sentinel.  The autouse
``host_unchanged`` fixture checks the host's own mount table on top.
"""

from __future__ import annotations

import ctypes
import errno
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from asyncinit import InitError
from tests.support.configs import bind, tmpfs
from tests.support.containers import MakeConfig, needs_root, run

pytestmark = [
    pytest.mark.integration,
    pytest.mark.anyio,
    needs_root,
    # One caller loop: attacks target the init, test_container.py covers both loops.
    pytest.mark.caller_loop("asyncio"),
]


@pytest.fixture
def sentinel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("host-sentinel")


@pytest.fixture
def source_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bind-source") / "payload"
    path.write_text("payload\n")
    return path


def no_mount_on(sentinel: Path) -> dict[str, Any]:
    """A postmount command failing if the init's mount table has anything on the sentinel."""
    # (stdin, the state, is read first: see the report about EPIPE on unread stdin)
    script = (
        "cat > /dev/null; awk "
        f'\'$5 == "{sentinel}" || index($5, "{sentinel}/") == 1 {{ exit 1 }}\' '
        "/proc/self/mountinfo"
    )
    return {"path": "/bin/sh", "args": ["sh", "-c", script]}


def attack_mounts(destination_dir: str, source_file: Path, sentinel: Path) -> list[dict[str, Any]]:
    check = [no_mount_on(sentinel)]
    return [
        {**bind(f"{destination_dir}/sub/file", source_file, "bind"), "postmount": check},
        {**bind(f"{destination_dir}/dir", source_file.parent, "rbind"), "postmount": check},
        {**tmpfs(f"{destination_dir}/t", "size=1m"), "postmount": check},
    ]


def assert_untouched(sentinel: Path) -> None:
    assert list(sentinel.iterdir()) == []


@pytest.mark.parametrize("kind", ["absolute", "relative", "dotdot-chain"])
async def test_symlinked_parent_stays_inside(
    make_config: MakeConfig, bundle: Path, sentinel: Path, source_file: Path, kind: str
) -> None:
    rootfs = bundle / "rootfs"
    if kind == "absolute":
        target = str(sentinel)
    elif kind == "relative":
        target = "../" * 20 + str(sentinel).lstrip("/")
    else:
        (rootfs / "a" / "b").mkdir(parents=True)
        (rootfs / "a" / "b" / "up").symlink_to("../../" * 12)
        target = "a/b/up" + str(sentinel)
    (rootfs / "evil").symlink_to(target)
    config = make_config("sh", "-c", "cat /evil/sub/file; ls /evil/dir")
    config["mounts"] += attack_mounts("/evil", source_file, sentinel)
    code, out, err = await run(config)
    assert code == 0, err
    assert out.splitlines()[:2] == ["payload", "payload"]
    assert_untouched(sentinel)
    inside = rootfs / str(sentinel).lstrip("/")
    assert (inside / "sub" / "file").is_file()  # the link was resolved inside the rootfs


async def test_dotdot_destination_is_confined(
    make_config: MakeConfig, bundle: Path, sentinel: Path, source_file: Path
) -> None:
    escape = "/.." * 20 + str(sentinel)
    config = make_config("cat", f"{sentinel}/sub/file")
    config["mounts"] += attack_mounts(escape, source_file, sentinel)
    code, out, err = await run(config)
    assert (code, out) == (0, "payload\n"), err
    assert_untouched(sentinel)


@pytest.mark.parametrize("directory", ["proc", "sys"])
@pytest.mark.parametrize("inside", [False, True], ids=["to-host", "to-image"])
async def test_proc_or_sys_replaced_by_a_symlink(
    make_config: MakeConfig, bundle: Path, sentinel: Path, directory: str, inside: bool
) -> None:
    rootfs = bundle / "rootfs"
    (rootfs / directory).rmdir()
    (rootfs / "elsewhere").mkdir()
    (rootfs / directory).symlink_to("/elsewhere" if inside else str(sentinel))
    with pytest.raises(InitError) as caught:
        await run(make_config())
    error = caught.value
    assert error.errno == errno.ENOTDIR
    assert error.path == f"/{directory}"
    assert "must be mounted on a directory" in str(error)
    assert (error.field or "").startswith("mounts[")
    assert_untouched(sentinel)
    assert list((rootfs / "elsewhere").iterdir()) == []


_libc = ctypes.CDLL(None, use_errno=True)
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def exchange(a: Path, b: Path) -> None:
    if _libc.renameat2(_AT_FDCWD, bytes(a), _AT_FDCWD, bytes(b), _RENAME_EXCHANGE) != 0:
        raise OSError(ctypes.get_errno(), "renameat2")


@pytest.fixture
def racer(bundle: Path, sentinel: Path) -> Iterator[threading.Event]:
    """Swap /race (a directory) and a symlink to the host sentinel, as fast as possible."""
    rootfs = bundle / "rootfs"
    (rootfs / "race").mkdir()
    (rootfs / "race-swap").symlink_to(str(sentinel))
    stop = threading.Event()
    swaps = 0

    def swap() -> None:
        nonlocal swaps
        while not stop.is_set():
            exchange(rootfs / "race", rootfs / "race-swap")
            swaps += 1

    thread = threading.Thread(target=swap, daemon=True)
    thread.start()
    try:
        yield stop
    finally:
        stop.set()
        thread.join()
    assert swaps > 1000


async def test_destination_swapped_for_a_symlink_while_mounting(
    make_config: MakeConfig,
    racer: threading.Event,
    sentinel: Path,
    source_file: Path,
) -> None:
    outcomes: dict[str, int] = {}
    for _ in range(30):
        config = make_config("true")
        config["mounts"] += attack_mounts("/race", source_file, sentinel)
        try:
            code, _, err = await run(config)
        except InitError as exc:
            # a clear refusal is fine; a postmount failure would mean a mount escaped
            outcome = f"{exc.stage}: {exc.message}"
        else:
            outcome = "ran" if code == 0 else f"exit {code}: {err}"
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
        assert_untouched(sentinel)
    assert set(outcomes) <= {"ran"} | {o for o in outcomes if o.startswith("mount: ")}, outcomes
