"""The state directory's operations: create, load, save, remove, list, under flock.

See _state.py for the layout and the locking rules.
"""

from __future__ import annotations

import fcntl
import os
import stat

from .._leanjson import dumps_indented, loads
from ._errors import ContainerExists, ContainerNotFound, StateFileError
from ._state import STATE_FILE, State, check_id

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC | os.O_NOFOLLOW
#: A state file holds the config's annotations (config.json is at most 16 MiB).
_MAX_STATE = 64 << 20


def _read_state(path: str) -> bytes:
    """The state file's bytes: a regular file of bounded size, or a StateFileError.

    Opened non-blocking and never through a symlink: a FIFO put there would
    hang every command that reads the state, /dev/zero would never end.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NOCTTY)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise StateFileError(path, "corrupt state file: not a regular file")
        if info.st_size > _MAX_STATE:
            raise StateFileError(path, f"corrupt state file: larger than {_MAX_STATE >> 20} MiB")
        with os.fdopen(fd, "rb", closefd=False) as f:
            return f.read(_MAX_STATE + 1)
    finally:
        os.close(fd)


class Lock:
    """flock on an open directory, released (and the fd closed) on exit."""

    def __init__(self, fd: int, exclusive: bool) -> None:
        self.fd = fd
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)

    def __enter__(self) -> Lock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)  # closing the last fd drops the flock
            self.fd = -1


class StateDir:
    """The containers under one root (``--root``)."""

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)

    def path(self, container_id: str, name: str = "") -> str:
        directory = os.path.join(self.root, check_id(container_id))
        return os.path.join(directory, name) if name else directory

    def _open_root(self, create: bool) -> int:
        if create:
            os.makedirs(self.root, mode=0o700, exist_ok=True)
        return os.open(self.root, _DIR_FLAGS)

    def lock_root(self, create: bool = False) -> Lock:
        """Exclusive lock on the root: held while a container directory comes or goes."""
        return Lock(self._open_root(create), exclusive=True)

    def lock(self, container_id: str, exclusive: bool = True) -> Lock:
        """Lock one container's directory; ContainerNotFound if it is (or goes) missing."""
        path = self.path(container_id)
        try:
            fd = os.open(path, _DIR_FLAGS)
        except (FileNotFoundError, NotADirectoryError):
            raise ContainerNotFound(container_id) from None
        lock = Lock(fd, exclusive)
        # a delete may have removed the directory while we waited for the lock
        if os.fstat(fd).st_nlink == 0:
            lock.release()
            raise ContainerNotFound(container_id)
        return lock

    def create(self, state: State) -> Lock:
        """Make the container's directory and first state file; returns its lock, held."""
        with self.lock_root(create=True):
            path = self.path(state.id)
            try:
                os.mkdir(path, 0o711)
            except FileExistsError:
                raise ContainerExists(state.id) from None
            lock = Lock(os.open(path, _DIR_FLAGS), exclusive=True)
            try:
                self.save(state)
            except BaseException:
                lock.release()
                self._remove_tree(path)
                raise
            return lock

    def load(self, container_id: str) -> State:
        path = self.path(container_id, STATE_FILE)
        try:
            raw = _read_state(path)
        except FileNotFoundError:
            if os.path.isdir(self.path(container_id)):
                raise StateFileError(path, "state file missing") from None
            raise ContainerNotFound(container_id) from None
        try:
            record = loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise StateFileError(path, f"corrupt state file: {exc}") from None
        state = State.from_record(record, path)
        if state.id != container_id:
            raise StateFileError(path, f"state file of {state.id[:100]!r}, not {container_id!r}")
        return state

    def save(self, state: State) -> None:
        """Replace the state file atomically (temporary file in the same directory, rename)."""
        final = self.path(state.id, STATE_FILE)
        temporary = self.path(state.id, f".{STATE_FILE}.{os.getpid()}")
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW
        fd = os.open(temporary, flags, 0o600)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(dumps_indented(state.record()))
            os.rename(temporary, final)
        except BaseException:
            try:  # noqa: SIM105  (contextlib is an import the lean commands do without)
                os.unlink(temporary)
            except FileNotFoundError:
                pass
            raise

    def remove(self, container_id: str) -> None:
        """Remove the container's directory (the caller holds its lock)."""
        with self.lock_root():
            self._remove_tree(self.path(container_id))

    @staticmethod
    def _remove_tree(path: str) -> None:
        try:
            names = os.listdir(path)
        except FileNotFoundError:
            return
        for name in names:
            entry = os.path.join(path, name)
            if os.path.isdir(entry) and not os.path.islink(entry):
                StateDir._remove_tree(entry)
            else:
                os.unlink(entry)
        try:  # noqa: SIM105
            os.rmdir(path)
        except FileNotFoundError:
            pass

    def ids(self) -> list[str]:
        """The container ids under the root, sorted (other files, like a daemon socket, skipped)."""
        try:
            entries = sorted(os.scandir(self.root), key=lambda e: e.name)
        except FileNotFoundError:
            return []
        return [e.name for e in entries if e.is_dir(follow_symlinks=False) and _valid(e.name)]

    def owner(self, container_id: str) -> int:
        """The uid that owns the container's directory (runc's list shows its name)."""
        return os.stat(self.path(container_id)).st_uid


def write_pid_file(path: str, pid: int) -> None:
    """runc's ``--pid-file``: the pid, no newline, written to a temporary file and renamed."""
    path = os.path.abspath(path)
    temporary = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}")
    with open(temporary, "w") as f:
        f.write(str(pid))
    os.rename(temporary, path)


def _valid(name: str) -> bool:
    try:
        check_id(name)
    except ValueError:
        return False
    return True
