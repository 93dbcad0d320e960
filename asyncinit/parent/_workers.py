"""Blocking work of the parent in anyio's worker threads, where no thread may start.

A worker thread is a task of the caller's process: under a pids limit (or
RLIMIT_NPROC) Python's thread start fails with RuntimeError, not with the
OSError every other exhausted resource gives.  A step reads as the one-line
``[stage] start a worker thread: ... (errno EAGAIN)``; a cleanup runs in the
event loop's thread instead, since leaving a cgroup or a veth behind is worse
than a blocked loop.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from typing import TypeVar, TypeVarTuple

import anyio.to_thread

from .._errors import failing_as

T = TypeVar("T")
Ts = TypeVarTuple("Ts")


def _no_thread(exc: RuntimeError) -> bool:
    return str(exc) == "can't start new thread"


async def in_worker(stage: str, function: Callable[[*Ts], T], *args: *Ts) -> T:
    """``function(*args)`` in a worker thread; no thread to start is an InitError of ``stage``."""
    try:
        return await anyio.to_thread.run_sync(function, *args)
    except RuntimeError as exc:
        if not _no_thread(exc):
            raise
        with failing_as(stage, "start a worker thread"):
            raise OSError(errno.EAGAIN, os.strerror(errno.EAGAIN)) from exc
    raise AssertionError("unreachable")


async def cleanup_in_worker(function: Callable[[*Ts], T], *args: *Ts) -> T:
    """``function(*args)`` in a worker thread, or in this one when no thread can start."""
    try:
        return await anyio.to_thread.run_sync(function, *args)
    except RuntimeError as exc:
        if not _no_thread(exc):
            raise
    return function(*args)
