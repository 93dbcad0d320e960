"""Run one hook or premount/postmount command: state on stdin, a timeout, output kept.

Shared by the parent (prestart, createRuntime, poststart, poststop) and the init
(createContainer, startContainer, premount, postmount), so a failing command
reads the same wherever it ran.

Not ``anyio.run_process``, for two reasons.  OCI (like execve and runc) runs
``path`` with ``args`` as its whole argv, so ``args[0]`` is argv[0] (busybox-style
multi-call binaries depend on it); anyio cannot pass an executable apart from
argv.  And anyio waits for EOF on the output pipes, which a hook that leaves a
daemon behind holding them (a network helper, say) turns into a hang.  Here
``subprocess.Popen`` forks and execs in C (safe beside the event loop's worker
threads) and anyio waits on a pidfd and the pipes, the same on asyncio and trio.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from types import TracebackType

import anyio

from ._errors import CommandError
from ._plan import CommandPlan

#: Bytes of a failing command's output kept for the error message.
OUTPUT_TAIL = 2048
#: How long a killed command may take to die before we stop waiting for it.
_KILL_GRACE = 5.0


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _tail(data: bytes | bytearray) -> str:
    return bytes(data[-OUTPUT_TAIL:]).decode(errors="replace").strip()


class _Running:
    """One started command: its pidfd, its pipes and the output collected so far."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self.process = process
        self.pidfd = os.pidfd_open(process.pid)
        self.stdout = bytearray()
        self.stderr = bytearray()

    async def communicate(self, data: bytes) -> int:
        """Feed ``data``, collect output, return the exit status once the process exits."""
        process = self.process
        assert process.stdin is not None
        assert process.stdout is not None
        assert process.stderr is not None
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._feed, process.stdin.fileno(), data)
            tg.start_soon(self._collect, process.stdout.fileno(), self.stdout)
            tg.start_soon(self._collect, process.stderr.fileno(), self.stderr)
            await anyio.wait_readable(self.pidfd)
            # Exited: what it wrote is in the pipes now; a daemon it left behind
            # may keep them open, so read what is there instead of waiting for EOF.
            tg.cancel_scope.cancel()
        for stream, buffer in ((process.stdout, self.stdout), (process.stderr, self.stderr)):
            with contextlib.suppress(BlockingIOError):
                self._append(buffer, os.read(stream.fileno(), 1 << 16))
        return process.wait()

    async def _feed(self, fd: int, data: bytes) -> None:
        os.set_blocking(fd, False)
        view = memoryview(data)
        try:
            while view:
                try:
                    view = view[os.write(fd, view) :]
                except BlockingIOError:
                    await anyio.wait_writable(fd)
        except BrokenPipeError:
            pass  # the command does not read its stdin: fine
        finally:
            assert self.process.stdin is not None
            self.process.stdin.close()

    async def _collect(self, fd: int, buffer: bytearray) -> None:
        os.set_blocking(fd, False)
        while True:
            try:
                chunk = os.read(fd, 1 << 16)
            except BlockingIOError:
                await anyio.wait_readable(fd)
                continue
            if not chunk:
                return
            self._append(buffer, chunk)

    @staticmethod
    def _append(buffer: bytearray, chunk: bytes) -> None:
        buffer += chunk
        if len(buffer) > 2 * OUTPUT_TAIL:
            del buffer[:-OUTPUT_TAIL]

    async def kill(self) -> None:
        """SIGKILL the command's process group (it and what it started), then reap it."""
        with anyio.CancelScope(shield=True):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            with anyio.move_on_after(_KILL_GRACE):
                await anyio.wait_readable(self.pidfd)
            self.process.poll()

    def output(self) -> str:
        return _tail(self.stderr) or _tail(self.stdout)

    def close(self) -> None:
        os.close(self.pidfd)
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()

    def __enter__(self) -> _Running:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


async def run_command(command: CommandPlan, stdin: bytes) -> None:
    """Run ``command`` to completion; raise CommandError when it fails or times out.

    On a timeout, and when the caller is cancelled, the command's whole process
    group is killed: a hook stuck in a child of its own leaves nothing running.
    """
    path = command["path"]
    field = command["field"]
    timeout = command["timeout"]
    try:
        process = subprocess.Popen(
            command["args"] or [path],
            executable=path,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(entry.partition("=")[::2] for entry in command["env"]),
            cwd=command.get("dir"),
            close_fds=True,
            process_group=0,
        )
    except OSError as exc:
        raise CommandError(
            f"could not be started: {exc.strerror or exc}"
            + (f" ({exc.filename})" if exc.filename and exc.filename != path else ""),
            path=path,
            field=field,
            errno=exc.errno or 0,
        ) from exc
    with _Running(process) as running:
        try:
            with anyio.fail_after(timeout):
                status = await running.communicate(stdin)
        except TimeoutError:
            await running.kill()
            raise CommandError(
                f"timed out after {timeout:g}s and was killed"
                + (f": {running.output()}" if running.output() else ""),
                path=path,
                field=field,
                timed_out=True,
                output=running.output(),
            ) from None
        except BaseException:
            await running.kill()
            raise
    if status == 0:
        return
    output = running.output()
    if status < 0:
        reason = f"was killed by {signal_name(-status)}"
    else:
        reason = f"exited with status {status}"
    raise CommandError(
        reason + (f": {output}" if output else ""),
        path=path,
        field=field,
        returncode=status if status > 0 else None,
        signal=-status if status < 0 else None,
        output=output,
    )
