"""The public API given the wrong types or values: a TypeError or UsageError naming
the argument, before anything is read or started; messages that show a value stay
short whatever the value (issue 12: errors never repr unbounded config or peer data)."""

from __future__ import annotations

import math
import os
import signal
import time
import types
from collections.abc import Callable
from typing import Any

import anyio
import pytest

from asyncinit import PythonHooks, UsageError, load_config, spawn
from asyncinit._lines import show
from asyncinit.config import check_spec, default_spec_dict
from asyncinit.parent import _spawn
from asyncinit.sync_pipe import Channel, Message, ProtocolError, send_blocking, socketpair
from tests.support.configs import base_config
from tests.support.containers import MakeConfig, needs_root

#: A config that fails to load: a wrong argument must be reported before it is read.
MISSING = "/nonexistent/config.json"


class _BytesPath(os.PathLike[bytes]):
    def __fspath__(self) -> bytes:
        return b"/x"


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        ({"config": 123}, "config"),
        ({"config": None}, "config"),
        ({"config": [1]}, "config"),
        ({"config": b"/x"}, "config"),
        ({"config": _BytesPath()}, "config"),
        ({"bundle": 5}, "bundle"),
        ({"container_id": 5}, "container_id"),
        ({"stdin": "x"}, "stdin"),
        ({"stdout": True}, "stdout"),
        ({"stderr": 1.0}, "stderr"),
        ({"hooks": [print]}, "hooks"),
        ({"hook_timeout": "10"}, "hook_timeout"),
        ({"backend": 3}, "backend"),
        ({"init": True}, "init"),
        ({"signal_group": "yes"}, "signal_group"),
        ({"pass_fds": 3}, "pass_fds"),
        ({"pass_fds": "34"}, "pass_fds"),
        ({"pass_fds": [3, "4"]}, r"pass_fds\[1\]"),
        ({"pass_fds": [True]}, r"pass_fds\[0\]"),
        ({"no_pivot_root": 1}, "no_pivot_root"),
        ({"console_size": "24x80"}, "console_size"),
    ],
)
async def test_spawn_names_an_argument_of_the_wrong_type(
    arguments: dict[str, Any], named: str
) -> None:
    arguments = {"config": MISSING, **arguments}
    with pytest.raises(TypeError, match=rf"^spawn\(\): {named} must be .*, not \w+$"):
        await spawn(**arguments)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        ({"stdin": -7}, "stdin"),
        ({"hook_timeout": 0}, "hook_timeout"),
        ({"hook_timeout": -1.5}, "hook_timeout"),
        ({"hook_timeout": math.nan}, "hook_timeout"),
        ({"hook_timeout": math.inf}, "hook_timeout"),
        ({"backend": "curio"}, "backend"),
        ({"pass_fds": [3, -1]}, r"pass_fds\[1\]"),
        ({"console_size": (24,)}, "console_size"),
        ({"console_size": (24, -80)}, "console_size"),
        ({"console_size": (24, 2**16)}, "console_size"),
    ],
)
async def test_spawn_names_an_argument_out_of_range(arguments: dict[str, Any], named: str) -> None:
    with pytest.raises(UsageError, match=rf"^spawn\(\): {named} must be "):
        await spawn(MISSING, **arguments)


@pytest.mark.anyio
async def test_spawn_refuses_an_unknown_keyword() -> None:
    with pytest.raises(TypeError, match="unexpected keyword argument 'bogus'"):
        await spawn(MISSING, bogus=1)  # type: ignore[call-arg]


@pytest.mark.anyio
async def test_a_huge_container_id_is_shown_short() -> None:
    with pytest.raises(UsageError) as info:
        await spawn(base_config(), container_id="/" * 10_000_000)
    assert len(str(info.value)) < 200


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: PythonHooks(create_runtime=3), r"create_runtime must be a sequence"),  # type: ignore[arg-type]
        (lambda: PythonHooks(poststop="hook"), r"poststop must be a sequence"),  # type: ignore[arg-type]
        (lambda: PythonHooks(poststart=[print, 3]), r"poststart\[1\] must be an async callable"),  # type: ignore[list-item]
        (lambda: load_config(123), r"load_config\(\): source must be a path or a config.json dict"),  # type: ignore[arg-type]
        (lambda: check_spec(default_spec_dict()), r"check_spec\(\): spec must be a Spec"),  # type: ignore[arg-type]
        (lambda: check_spec("config.json"), r"check_spec\(\): spec must be a Spec"),  # type: ignore[arg-type]
    ],
)
def test_the_other_public_callables_name_the_argument(
    make: Callable[[], object], message: str
) -> None:
    with pytest.raises(TypeError, match=message):
        make()


def deep(levels: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(levels):
        value = [value]
    return value


@pytest.mark.parametrize(
    "value",
    [
        deep(200_000),
        {"a": "x" * 10_000_000},
        list(range(1_000_000)),
        "x" * 10_000_000,
        10**5000,
        b"x" * 10_000_000,
        {"k": [deep(100_000), "\udc80"]},
    ],
    ids=["deep", "huge-string-in-dict", "long-list", "huge-string", "huge-int", "bytes", "mixed"],
)
def test_show_is_bounded_in_length_and_work(value: object) -> None:
    started = time.perf_counter()
    text = show(value, 200)
    assert len(text) <= 200
    assert time.perf_counter() - started < 0.05
    text.encode()  # printable: a lone surrogate is escaped


def test_show_writes_json() -> None:
    assert [show(v) for v in ("0", 0, True, None, 1.5, math.nan, {"a": [1, "b"]})] == [
        '"0"',
        "0",
        "true",
        "null",
        "1.5",
        "NaN",
        '{"a": [1, "b"]}',
    ]
    assert show("x" * 100, 10) == '"xxxxxx...'


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_malformed_init_message_is_shown_short(anyio_backend: str) -> None:
    """The parent's error for a malformed ``mount_please`` shows the init's fields
    bounded: it reprs them whole, which for a large message is the whole message."""
    parent, child = socketpair()
    huge = {"index": "0", "junk": ["x" * 100_000, deep(60)]}
    send_blocking(child, Message("mount_please", huge))
    compiled = types.SimpleNamespace(plan={}, mount_sources={})
    container = types.SimpleNamespace(
        pid=os.getpid(), state=lambda status: {"status": status}, cgroup=None
    )
    channel = Channel(parent)
    try:
        with pytest.raises(ProtocolError) as info:
            await _spawn._drive(channel, compiled, container)  # type: ignore[arg-type]
    finally:
        channel.close()
        child.close()
    assert len(str(info.value)) < 300
    assert str(info.value).startswith('malformed "mount_please": {"index": "0", "junk": ["xxx')


@pytest.mark.integration
@needs_root
@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_container_methods_check_their_arguments(
    make_config: MakeConfig, anyio_backend: str
) -> None:
    """A signal number over 32 bits was cut by ctypes (2**32 + 9 sent SIGKILL), and
    ``namespace_path("../root")`` led out of /proc/PID/ns."""
    container = await spawn(make_config("sleep", "60"))
    async with container:
        with pytest.raises(UsageError, match=r"signum .* out of range"):
            container.send_signal(2**32 + signal.SIGKILL)
        with pytest.raises(TypeError, match=r"send_signal\(\): signum must be an int, not str"):
            container.send_signal("KILL")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match=r"copy_fd\(\): fd must be an int"):
            container.copy_fd(1.0)  # type: ignore[arg-type]
        with pytest.raises(UsageError, match=r"copy_fd\(\): fd .* out of range"):
            container.copy_fd(2**32 + 1)
        with pytest.raises(UsageError, match=r'no namespace "\.\./root"'):
            container.open_namespace("../root")
        with pytest.raises(TypeError, match="namespace_path"):
            container.namespace_path(None)  # type: ignore[arg-type]
        fd = container.open_namespace("net")
        os.close(fd)
        with anyio.move_on_after(0.5):
            await container.wait()
        assert container.returncode is None  # still running: nothing was sent
        container.send_signal(signal.SIGKILL)
        assert await container.wait() == 128 + signal.SIGKILL
