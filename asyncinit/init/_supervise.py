"""Supervise mode: the init stays PID 1, reaps orphans, forwards signals, reports the exit.

Runs after the event loop has finished, in the main thread, so ``waitpid(-1)``
cannot steal the exit status of a subprocess the loop was waiting for (hooks and
premount commands are all done by then).  The workload is started with
``posix_spawn`` (vfork+exec in C): the init may still have idle worker threads,
and forking a threaded interpreter is unsafe.
"""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import socket
from functools import partial
from types import FrameType
from typing import NoReturn

from .._plan import ProcessPlan
from .._rules import exit_code
from .._syscalls import with_operation
from .._syscalls._process import MADV_DONTNEED, MADV_RANDOM, madvise
from ..sync_pipe import Kind, Message, send_blocking
from ._process import Prepared, before_exec, close_unpassed_fds, default_signals

#: Signals a supervising init passes on to the workload (tini's and catatonit's set).
FORWARDED = (
    signal.SIGTERM,
    signal.SIGINT,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
    signal.SIGWINCH,
    signal.SIGCONT,
)


def supervise(process: ProcessPlan, prepared: Prepared, sync: socket.socket) -> NoReturn:
    """Start the workload as our child and supervise it; exit with its status."""
    executable, env, terminal = prepared.executable, prepared.env, prepared.terminal
    close_unpassed_fds(process)
    # posix_spawn runs no code of ours between its vfork and the exec, so the filter
    # goes on this thread and the child inherits it: the supervising init obeys the
    # workload's profile from here on (waitpid, kill, sendmsg, exit; docs/security.md).
    # The same for the AppArmor exec attribute and the personality.
    before_exec(process, prepared, sync)
    target = 0

    def forward(signum: int, _frame: FrameType | None) -> None:
        if target:
            with contextlib.suppress(ProcessLookupError):
                os.kill(target, signum)

    # Blocked until the workload's pid is known, so that no signal is lost meanwhile.
    signal.pthread_sigmask(signal.SIG_BLOCK, FORWARDED)
    for signum in FORWARDED:
        signal.signal(signum, forward)
    own_group = process["signal_group"] or terminal is not None
    if terminal is not None:
        terminal.take_session()
    spawn = partial(
        os.posix_spawn,
        executable,
        process["args"],
        env,
        file_actions=terminal.spawn_actions() if terminal is not None else (),
        setsigdef=default_signals() | set(FORWARDED),
        setsigmask=(),
    )
    try:
        pid = spawn(setpgroup=0) if own_group else spawn()  # 0: a group led by the workload
    except OSError as exc:  # EAGAIN under a pids limit, ENOENT...: named like execve's
        raise with_operation(exc, "posix_spawn") from None
    target = -pid if process["signal_group"] else pid
    if terminal is not None:
        terminal.hand_to(pid)
    pidfd = os.pidfd_open(pid)
    try:
        send_blocking(sync, Message(Kind.WORKLOAD, {"pid": pid}, [pidfd]))
    except OSError:
        pass  # the parent is gone: the container still runs to completion
    finally:
        os.close(pidfd)
    gc.collect()
    gc.freeze()  # long-lived from here on: keep the collector off our pages
    _release_file_pages()
    signal.pthread_sigmask(signal.SIG_UNBLOCK, FORWARDED)

    status = _reap_until(pid)
    with contextlib.suppress(OSError):
        send_blocking(sync, Message(Kind.EXITED, {"status": status}))
    # Our exit takes everything left in the pid namespace with us (SIGKILL by the kernel).
    os._exit(exit_code(status))


#: Read-only file mappings of the fork server with no page of their own, noted
#: by it before it forks (:func:`note_clean_file_mappings`): the init inherits
#: them at the same addresses, and never has to read the container's /proc.
_clean_file_mappings: list[tuple[int, int]] = []


def note_clean_file_mappings() -> None:
    """[(start, end)] of read-only file mappings whose every page is still the file's.

    "Anonymous: 0 kB" means no relocation or other write copied a page, so
    dropping them loses nothing: they fault back in from the page cache, identical.
    """
    ranges: list[tuple[int, int]] = []
    current: tuple[int, int] | None = None
    with open("/proc/self/smaps") as smaps:
        for line in smaps:
            fields = line.split(maxsplit=5)
            if len(fields) == 6 and "-" in fields[0]:  # a mapping's header line
                perms, path = fields[1], fields[5]
                start, end = fields[0].split("-")
                clean = perms[1] == "-" and path.startswith("/")
                current = (int(start, 16), int(end, 16)) if clean else None
            elif current is not None and fields[0] == "Anonymous:" and fields[1] == "0":
                ranges.append(current)
    _clean_file_mappings[:] = ranges


def _release_file_pages() -> None:
    """Unmap the library pages the start touched; the few the wait loop needs fault back in.

    The forked interpreter ran a whole event loop, so megabytes of libpython's code
    sit in its page tables for as long as the workload runs.  They are shared page
    cache (dropping them frees no memory for the machine), but they count in this
    process's RSS, the figure users compare runtimes' init processes on.
    MADV_RANDOM first: each page faults back alone, not with its 15 neighbours.
    """
    for start, end in _clean_file_mappings:
        with contextlib.suppress(OSError):
            madvise(start, end - start, MADV_RANDOM)
            madvise(start, end - start, MADV_DONTNEED)


def _reap_until(workload: int) -> int:
    """Reap every child (orphans reparent to PID 1) until the workload itself exits."""
    while True:
        try:
            pid, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return 0
        if pid == workload:
            return status
