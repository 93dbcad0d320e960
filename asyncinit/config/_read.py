"""Turning config.json's bytes, or a caller's dict, into plain JSON data safely.

Everything that would otherwise escape as a bare Python exception, or hang, is a
ConfigError here: a FIFO or device where the file should be (``open`` would wait
for a writer), a huge file, invalid UTF-8 or JSON, ``NaN``, a key given twice in
one object (parsers disagree on which value wins: Go and Python keep the last,
others the first, so a checker and the runtime could read different configs),
and nesting so deep that recursive code (json, cattrs, repr) would raise
RecursionError.  No real config comes near ``MAX_DEPTH``: a seccomp argument
filter, the deepest field of the spec, sits at depth 6.
"""

from __future__ import annotations

import json
import os
import stat
from collections import Counter
from collections.abc import Mapping
from typing import Any, Final

from .._lines import show
from ._model import ConfigError

__all__ = ["MAX_BYTES", "MAX_DEPTH", "TOO_DEEP", "check_shape", "read_json"]

#: Deepest nesting of objects and arrays accepted (the document itself is level 1).
MAX_DEPTH: Final = 64
#: Largest config.json accepted (runc's default config is 2.6 KiB; big seccomp
#: profiles are a few hundred KiB).
MAX_BYTES: Final = 16 * 2**20

TOO_DEEP: Final = f"nested too deeply (more than {MAX_DEPTH} levels)"


class _KeysTwice(dict[str, Any]):
    """A JSON object in which some keys were given more than once."""

    twice: tuple[str, ...] = ()


def _child(path: str, key: object) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    if isinstance(key, str) and key.isidentifier():
        return f"{path}.{key}" if path else key
    return f"{path}[{show(key)}]"


_SCALARS: Final = frozenset({str, int, float, bool, type(None)})


def _scan(data: object) -> tuple[bool, list[str]]:
    """(nested deeper than MAX_DEPTH?, every string and key met on the way).

    Breadth first, without recursion; plain dicts and lists take the fast path.
    """
    texts: list[str] = []
    level: list[Any] = [data]
    for _ in range(MAX_DEPTH):
        below: list[Any] = []
        for value in level:
            kind = type(value)
            if kind is str:
                texts.append(value)
            elif kind in _SCALARS:
                continue
            elif kind is dict or isinstance(value, Mapping):
                texts.extend(key for key in value if isinstance(key, str))
                below.extend(value.values())
            elif kind is list or kind is tuple or isinstance(value, list | tuple):
                below.extend(value)
            elif isinstance(value, str):  # a subclass (StrEnum...): cattrs keeps it
                texts.append(value)
        if not below:
            return False, texts
        level = below
    # The values below MAX_DEPTH levels of containers: only scalars may be there.
    texts.extend(value for value in level if isinstance(value, str))
    return any(type(value) not in _SCALARS for value in level), texts


def _shape_errors(data: object, keys_twice: bool) -> list[str]:
    """Each too deep subtree (named by its first two keys) and each key given twice."""
    errors: dict[str, None] = {}  # ordered and without repeats
    stack: list[tuple[object, str, str, int]] = [(data, "", "", 1)]
    while stack:
        value, path, top, depth = stack.pop()
        if depth <= 3:
            top = path
        if isinstance(value, Mapping):
            items: list[tuple[object, object]] = list(value.items())
        elif isinstance(value, list | tuple):
            items = list(enumerate(value))
        else:
            continue
        if depth > MAX_DEPTH:
            errors[f"{top or '(root)'}: {TOO_DEEP}"] = None
            continue
        if keys_twice and isinstance(value, _KeysTwice):
            for twice in value.twice:
                errors[f"{_child(path, twice)}: key given more than once"] = None
        for key, child in reversed(items):
            child_path = _child(path, key)
            stack.append((child, child_path, top, depth + 1))
    return list(errors)


def check_shape(data: object) -> bool:
    """Refuse data nested deeper than MAX_DEPTH.

    Returns whether some string may not survive as a C string (a NUL, a lone
    surrogate): a cheap filter, so the exact check of every modelled field
    (``string_problems``) runs only when it can find something.
    """
    too_deep, texts = _scan(data)
    if too_deep:
        raise ConfigError(_shape_errors(data, keys_twice=False))
    text = "".join(texts)
    if "\0" in text:
        return True
    try:
        text.encode()
    except UnicodeEncodeError:
        return True
    return False


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not valid JSON")


def _read_bytes(path: str | os.PathLike[str], name: str) -> bytes:
    """The file's content; never blocks (a FIFO is refused, not opened for reading)."""
    flags = os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise ConfigError([f"{name}: cannot read: {exc.strerror or exc}"]) from exc
    except ValueError as exc:  # a NUL byte in the path
        raise ConfigError([f"{name}: cannot read: the path contains a NUL byte"]) from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError([f"{name}: not a regular file"])
        chunks: list[bytes] = []
        size = 0
        while chunk := os.read(fd, 1 << 20):
            size += len(chunk)
            if size > MAX_BYTES:
                raise ConfigError([f"{name}: larger than {MAX_BYTES >> 20} MiB"])
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError as exc:
        raise ConfigError([f"{name}: cannot read: {exc.strerror or exc}"]) from exc
    finally:
        os.close(fd)


def read_json(path: str | os.PathLike[str]) -> object:
    """Parse the config file at ``path`` into JSON data, or raise ConfigError.

    The data's depth is for ``check_shape`` to check, as for a caller's dict.
    """
    name = os.fsdecode(os.path.basename(os.fspath(path)) or os.fspath(path))
    if not name.isprintable():
        name = show(name)
    raw = _read_bytes(path, name)
    keys_twice = False

    def object_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        nonlocal keys_twice
        result = dict(pairs)
        if len(result) == len(pairs):
            return result
        keys_twice = True
        marked = _KeysTwice(result)
        marked.twice = tuple(k for k, n in Counter(k for k, _ in pairs).items() if n > 1)
        return marked

    try:
        data = json.loads(
            raw.decode("utf-8"), parse_constant=_reject_constant, object_pairs_hook=object_pairs
        )
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{name}: not valid UTF-8 at byte {exc.start}"]) from exc
    except json.JSONDecodeError as exc:
        raise ConfigError(
            [f"{name}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"]
        ) from exc
    except ValueError as exc:  # NaN, Infinity; an integer of more than 4300 digits
        reason = "a number too long" if "integer string conversion" in str(exc) else exc
        raise ConfigError([f"{name}: invalid JSON: {reason}"]) from exc
    except RecursionError as exc:  # json's C scanner recurses once per level
        raise ConfigError([f"{name}: {TOO_DEEP}"]) from exc
    if keys_twice:
        raise ConfigError(_shape_errors(data, keys_twice=True))
    return data
