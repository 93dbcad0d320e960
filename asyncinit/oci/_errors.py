"""The errors of the runc-style commands.

Not subclasses of asyncinit's AsyncInitError/UsageError on purpose, for now:
asyncinit/_errors.py imports traceback and typing (re with them, ~10 ms), which
``state``/``kill``/``start`` cannot afford per call.  Once that module imports
them lazily, OciError can derive from AsyncInitError (and OciUsageError from
UsageError) in one line each.
"""

from __future__ import annotations

import errno


class OciError(Exception):
    """Base class of every error the runc-style commands raise on purpose."""


class OciUsageError(OciError, ValueError):
    """A command line, flag value, id or signal that runc would refuse too."""


class UnknownCommand(OciUsageError):
    """No such command: runc (urfave/cli) exits with 3 for this one, 1 for other usage errors."""


class ContainerNotFound(OciError, LookupError):
    """No container with that id under the root (runc's words: container does not exist)."""

    def __init__(self, container_id: str) -> None:
        super().__init__("container does not exist")
        self.container_id = container_id


class ContainerExists(OciError, FileExistsError):
    def __init__(self, container_id: str) -> None:
        super().__init__(errno.EEXIST, f"container with id exists: {container_id}")
        self.container_id = container_id

    def __str__(self) -> str:
        return str(self.args[1])


class StateFileError(OciError, ValueError):
    """A state file that cannot be read or makes no sense; the message names the file."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
