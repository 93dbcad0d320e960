"""The CLI's one-line messages, shared by ``cli`` and the daemon that speaks for it.

A module of its own, importing nothing: ``cli`` imports the daemon lazily and the
daemon sends its clients the lines ``cli`` prints, so neither imports the other.
"""

from __future__ import annotations


def warning_line(message: Warning | str) -> str:
    """A warning as the CLI prints it (the daemon sends its clients the same line)."""
    return f"asyncinit: warning: {message}"


def error_line(exc: Exception) -> str:
    """The one line the CLI prints for a failed run (the daemon sends its clients the same)."""
    from ._errors import AsyncInitError

    if isinstance(exc, AsyncInitError | OSError) or type(exc).__name__ == "ConfigError":
        return f"asyncinit: error: {exc}"
    return f"asyncinit: internal error: {type(exc).__name__}: {exc} (--debug for details)"
