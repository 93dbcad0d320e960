"""The state directory: one directory per container, its ``state.json``, and the locks.

Layout (docs/cli.md)::

    <root>/                 0700, default /run/asyncinit (runc: /run/runc)
    <root>/<id>/            0711, one per container; flock()ed by commands on it
    <root>/<id>/state.json  0600, written whole to a temporary file and renamed

Concurrency: creating or removing a container directory holds an exclusive
flock on ``<root>`` itself; every command acting on a container holds a flock
on the container's directory (exclusive to change it, shared to read it) and
checks after locking that the directory is still the one it opened (a
``delete`` may have won the race).  Readers never see a half-written file:
the rename is atomic.

A container's status is not trusted from the file alone: its init may have
died since.  :func:`live_status` reads ``/proc/<pid>/stat`` and calls the
container ``stopped`` once that pid is gone, a zombie, or a different process
(start time differs), as runc does; a ``creating`` container whose creator
died is ``stopped`` too, so ``delete`` cleans a half-created one.
"""

from __future__ import annotations

import os
import time

from .._lines import show
from ._errors import OciUsageError as UsageError
from ._errors import StateFileError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

OCI_VERSION = "1.0.2-dev"  # the runtime-spec version asyncinit implements (runc 1.1.5's)
STATE_FILE = "state.json"
STATUSES = ("creating", "created", "running", "paused", "stopped")
_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+-.")


def check_id(container_id: str) -> str:
    """runc's rule: letters, digits, ``_ + - .``; not ``.`` or ``..``; at most 255 bytes."""
    if (
        not container_id
        or container_id in (".", "..")
        or not _ID_CHARS.issuperset(container_id)
        or len(container_id) > 255
    ):
        raise UsageError(f"invalid container ID format: {container_id!r}")
    return container_id


def rfc3339_nano(ns: int) -> str:
    """Go's ``time.RFC3339Nano`` of a UTC time: trailing zeros of the fraction dropped."""
    seconds, fraction = divmod(ns, 1_000_000_000)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    digits = f"{fraction:09d}".rstrip("0")
    return f"{stamp}.{digits}Z" if digits else f"{stamp}Z"


class State:
    """What asyncinit keeps about a container; :meth:`spec` is the runtime-spec State.

    ``pid_start`` is the init's start time (field 22 of /proc/<pid>/stat), so a
    recycled pid is never taken for the init; ``creator`` is the pid and start
    time of the process running ``create``. ``extra`` is for the wiring
    (cgroup paths, namespace paths...), kept as it is.
    """

    __slots__ = (
        "annotations",
        "bundle",
        "created",
        "creator",
        "creator_start",
        "extra",
        "id",
        "pid",
        "pid_start",
        "rootfs",
        "status",
    )

    def __init__(
        self,
        container_id: str,
        *,
        bundle: str,
        rootfs: str,
        status: str = "creating",
        pid: int = 0,
        pid_start: int = 0,
        created: str | None = None,
        annotations: dict[str, str] | None = None,
        creator: tuple[int, int] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self.id = container_id
        self.bundle = bundle
        self.rootfs = rootfs
        self.status = status
        self.pid = pid
        self.pid_start = pid_start
        self.created = created or rfc3339_nano(time.time_ns())
        self.annotations = annotations or {}
        if creator is None:
            creator = (os.getpid(), process_start_time(os.getpid()) or 0)
        self.creator, self.creator_start = creator
        self.extra = extra or {}

    def spec(self, status: str, owner: str = "") -> dict[str, Any]:
        """The runtime-spec State, keys in runc's order; no pid once stopped (runc: 0)."""
        document: dict[str, Any] = {
            "ociVersion": OCI_VERSION,
            "id": self.id,
            "pid": 0 if status == "stopped" else self.pid,
            "status": status,
            "bundle": self.bundle,
            "rootfs": self.rootfs,
            "created": self.created,
        }
        if self.annotations:
            document["annotations"] = self.annotations
        document["owner"] = owner
        return document

    def record(self) -> dict[str, Any]:
        """The on-disk form."""
        return {
            "id": self.id,
            "status": self.status,
            "pid": self.pid,
            "pidStartTime": self.pid_start,
            "creatorPid": self.creator,
            "creatorStartTime": self.creator_start,
            "bundle": self.bundle,
            "rootfs": self.rootfs,
            "created": self.created,
            "annotations": self.annotations,
            "extra": self.extra,
        }

    @classmethod
    def from_record(cls, record: object, path: str) -> State:
        """A State from a parsed state file; StateFileError naming ``path`` and the field."""
        if not isinstance(record, dict):
            raise StateFileError(path, "corrupt state file: not a JSON object")
        fields = {
            "id": str,
            "status": str,
            "pid": int,
            "pidStartTime": int,
            "creatorPid": int,
            "creatorStartTime": int,
            "bundle": str,
            "rootfs": str,
            "created": str,
            "annotations": dict,
            "extra": dict,
        }
        for key, kind in fields.items():
            if not isinstance(record.get(key), kind) or isinstance(record.get(key), bool):
                raise StateFileError(path, f"corrupt state file: {key}: expected {kind.__name__}")
        if record["status"] not in STATUSES:
            raise StateFileError(path, f"corrupt state file: status: {show(record['status'])}")
        return cls(
            record["id"],
            bundle=record["bundle"],
            rootfs=record["rootfs"],
            status=record["status"],
            pid=record["pid"],
            pid_start=record["pidStartTime"],
            created=record["created"],
            annotations=record["annotations"],
            creator=(record["creatorPid"], record["creatorStartTime"]),
            extra=record["extra"],
        )


def process_start_time(pid: int) -> int | None:
    """Field 22 of /proc/<pid>/stat, or None for a pid that is gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = stat[stat.rindex(b")") + 2 :].split()
    if fields[0] in (b"Z", b"X"):
        return None
    return int(fields[19])


def live_status(state: State) -> str:
    """The status as it is now: the stored one unless the process behind it is gone."""
    if state.status == "creating":
        alive = process_start_time(state.creator) == state.creator_start
        return "creating" if alive else "stopped"
    if state.status == "stopped" or state.pid <= 0:
        return "stopped"
    if process_start_time(state.pid) != state.pid_start:
        return "stopped"
    return state.status
