"""The CLI's one-line messages, and values shown in them within a bound.

A module of its own, importing nothing up front: ``cli`` imports the daemon
lazily and the daemon sends its clients the lines ``cli`` prints, so neither
imports the other; config/, parent/ and the sync pipe show values with
:func:`show`.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not typing's: the lean client imports this module
if TYPE_CHECKING:
    from collections.abc import Iterator


def warning_line(message: Warning | str) -> str:
    """A warning as the CLI prints it (the daemon sends its clients the same line)."""
    return f"asyncinit: warning: {message}"


def error_line(exc: Exception) -> str:
    """The one line the CLI prints for a failed run (the daemon sends its clients the same)."""
    from ._errors import AsyncInitError

    if isinstance(exc, AsyncInitError | OSError) or type(exc).__name__ == "ConfigError":
        return f"asyncinit: error: {exc}"
    return f"asyncinit: internal error: {type(exc).__name__}: {exc} (--debug for details)"


def show(value: object, limit: int = 60) -> str:
    """``value`` as JSON for an error message, at most ``limit`` characters ("0" and 0 differ).

    Bounded work too, whatever the value: only what fits is rendered, so a huge or
    deeply nested value from a config or a peer costs what a short one does (a
    whole ``json.dumps`` or ``repr`` runs out of memory or recursion first).
    """
    text = ""
    for token in _tokens(value, limit):
        text += token
        if len(text) > limit:
            return text[: limit - 3] + "..."
    return text


def _tokens(value: object, limit: int) -> Iterator[str]:
    """``value``'s JSON text piece by piece, lazily: nesting costs only what is read."""
    if isinstance(value, str):
        yield _string(value[: limit + 1])
    elif value is None or isinstance(value, bool):
        yield {None: "null", True: "true", False: "false"}[value]
    elif isinstance(value, float):
        import json

        yield json.dumps(value)  # NaN and Infinity as Python's json writes them
    elif isinstance(value, int):
        try:
            yield str(value)
        except ValueError:  # more digits than Python converts
            yield "<int too large to show>"
    elif isinstance(value, dict):
        yield "{"
        for index, (key, item) in enumerate(value.items()):
            yield ", " if index else ""
            yield from _tokens(key, limit)
            yield ": "
            yield from _tokens(item, limit)
        yield "}"
    elif isinstance(value, list | tuple):
        yield "["
        for index, item in enumerate(value):
            yield ", " if index else ""
            yield from _tokens(item, limit)
        yield "]"
    elif isinstance(value, bytes | bytearray):
        yield repr(value[: limit + 1])
    else:
        import reprlib

        yield reprlib.repr(value)  # bounded for the builtin containers; short for the rest


def _string(text: str) -> str:
    import json

    quoted = json.dumps(text, ensure_ascii=False)
    try:
        quoted.encode()
    except UnicodeEncodeError:  # a lone surrogate would break printing the message
        quoted = json.dumps(text)
    return quoted
