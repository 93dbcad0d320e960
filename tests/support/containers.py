"""Running real containers from tests: the root check and a run to completion."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import pytest

from asyncinit import PIPE, spawn

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="starts real containers: needs root")

#: The ``make_config`` fixture (tests/conftest.py): a config running ``args`` on the test's bundle.
MakeConfig = Callable[..., dict[str, Any]]


async def read_all(stream: anyio.abc.ByteReceiveStream | None) -> str:
    assert stream is not None
    chunks = []
    async for chunk in stream:
        chunks.append(chunk)
    return b"".join(chunks).decode()


async def run(config: dict[str, Any], **kwargs: Any) -> tuple[int, str, str]:
    """Run to completion; (exit code, stdout, stderr).  Checks nothing survives it."""
    container = await spawn(config, stdout=PIPE, stderr=PIPE, **kwargs)
    async with container:
        out, err = "", ""

        async def collect_out() -> None:
            nonlocal out
            out = await read_all(container.stdout)

        async def collect_err() -> None:
            nonlocal err
            err = await read_all(container.stderr)

        async with anyio.create_task_group() as tg:
            tg.start_soon(collect_out)
            tg.start_soon(collect_err)
        code = await container.wait()
    assert not Path(f"/proc/{container.pid}").exists(), "PID 1 outlived its container"
    return code, out, err
