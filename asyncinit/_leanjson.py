"""JSON through ``_json``'s C scanner and encoder, without importing ``json`` (which imports re).

Written the way Go's encoding/json writes, because runc's output is the
reference for what podman, containerd and scripts parse: non-ASCII as UTF-8,
``<``, ``>``, ``&``, U+2028 and U+2029 escaped as ``\\u003c``..., and
:func:`dumps_indented` is ``json.MarshalIndent(v, "", "  ")`` (no final newline).
Floats are never written (nothing asyncinit prints has one).
"""

from __future__ import annotations

import _json

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs a millisecond that `asyncinit state` does not have
    from typing import Any

_GO_ESCAPES = (
    ("<", "\\u003c"),
    (">", "\\u003e"),
    ("&", "\\u0026"),
    ("\u2028", "\\u2028"),
    ("\u2029", "\\u2029"),
)


def go_string(text: str) -> str:
    """A JSON string literal as Go writes it."""
    quoted: str = _json.encode_basestring(text)
    for char, escape in _GO_ESCAPES:
        if char in quoted:
            quoted = quoted.replace(char, escape)
    return quoted


class _Context:
    """What the C scanner reads off ``json.JSONDecoder``."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int

    @staticmethod
    def parse_constant(name: str) -> object:
        raise ValueError(f"{name} is not valid JSON")


def _unencodable(value: object) -> object:
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


_scan = _json.make_scanner(_Context)  # type: ignore[arg-type]  # reads the attributes only
_encode = _json.make_encoder(None, _unencodable, go_string, None, ":", ",", False, False, False)


def _scan_from(text: str, start: int) -> tuple[Any, int]:
    try:
        return _scan(text, start)
    except StopIteration as exc:
        raise ValueError(f"invalid JSON at character {exc.value}") from None
    except SystemError:
        # The scanner raises its errors as json.decoder.JSONDecodeError, which it takes
        # from sys.modules only: without json imported, it fails with no exception set.
        import json.decoder  # noqa: F401  (imported for its side effect: sys.modules)

        return _scan(text, start)  # now raises JSONDecodeError, a ValueError


def loads(text: str | bytes) -> Any:  # noqa: ANN401  (JSON is any value)
    """Parse one JSON document; ValueError (with the position) if it is not exactly one."""
    if isinstance(text, bytes):
        text = text.decode()
    start = len(text) - len(text.lstrip(" \t\n\r"))
    try:
        value, end = _scan_from(text, start)
    except RecursionError:  # the scanner recurses per level: "[" * 100000
        raise ValueError("invalid JSON: nested too deeply") from None
    rest = text[end:].strip(" \t\n\r")
    if rest:
        raise ValueError(f"extra data after the JSON value at character {end}")
    return value


def dumps(value: Any) -> str:  # noqa: ANN401
    """Compact JSON (Go's json.Marshal)."""
    return "".join(_encode(value, 0))


def dumps_indented(value: Any, indent: str = "  ", level: int = 0) -> str:  # noqa: ANN401
    """Go's ``json.MarshalIndent(value, "", indent)``: empty containers stay ``{}``/``[]``."""
    if isinstance(value, dict) and value:
        inner = indent * (level + 1)
        items = (
            f"{inner}{go_string(str(key))}: {dumps_indented(item, indent, level + 1)}"
            for key, item in value.items()
        )
        return "{\n" + ",\n".join(items) + "\n" + indent * level + "}"
    if isinstance(value, list | tuple) and value:
        inner = indent * (level + 1)
        items = (f"{inner}{dumps_indented(item, indent, level + 1)}" for item in value)
        return "[\n" + ",\n".join(items) + "\n" + indent * level + "]"
    return dumps(value)
