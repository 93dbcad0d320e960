"""One rule for every string of the config: it must survive becoming a C string.

Paths, args, env entries, mount options, sysctls, hostnames, annotations (they
reach hooks in the OCI state)... all end up as NUL-terminated bytes: an embedded
NUL would cut the value short, so the kernel would see another value than the
config says, and Python refuses it with a bare ValueError deep inside spawn().
A lone surrogate (JSON can spell ``"\\ud800"``) has no UTF-8 form: Python would
either fail to encode it or, for ``\\udc80``-``\\udcff``, turn it into a raw
byte where Go's runtimes read U+FFFD.  Checked on the modelled fields of a
Spec, so a loaded config and a Spec built in Python get the same check; raw-JSON
fields (``linux.seccomp``...) are refused or ignored whole and never used.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Final

import attrs

from .._lines import show
from ._model import json_key

__all__ = ["string_problems"]

_fields: dict[type, tuple[tuple[str, str], ...]] = {}

_RAW: Final = ("Any", Any)


def _modelled_fields(cls: type) -> tuple[tuple[str, str], ...]:
    """(attribute, JSON key) of each field that is not raw JSON, per class (cached)."""
    fields = _fields.get(cls)
    if fields is None:
        fields = tuple(
            (field.name, json_key(field)) for field in attrs.fields(cls) if field.type not in _RAW
        )
        _fields[cls] = fields
    return fields


def _strings(value: object, path: str) -> Iterator[tuple[str, str, bool]]:
    """(path, string, is_a_mapping_key) of every string under ``value``."""
    if isinstance(value, str):
        yield path, value, False
    elif isinstance(value, tuple | list):
        for index, item in enumerate(value):
            yield from _strings(item, f"{path}[{index}]")
    elif isinstance(value, Mapping):
        for key, item in value.items():
            where = f"{path}[{show(key)}]"
            if isinstance(key, str):
                yield where, key, True
            yield from _strings(item, where)
    elif attrs.has(type(value)):
        for name, key in _modelled_fields(type(value)):
            yield from _strings(getattr(value, name), f"{path}.{key}" if path else key)


def _problem(text: str) -> str | None:
    if "\0" in text:
        return "contains a NUL byte"
    if not text.isascii():
        try:
            text.encode()
        except UnicodeEncodeError as exc:
            char = text[exc.start]
            return f"contains {show(char)}, a lone surrogate (not Unicode text)"
    return None


def string_problems(spec: object) -> list[str]:
    """Every string of ``spec`` that cannot become a C string, as "json.path: message"."""
    errors = []
    for path, text, is_key in _strings(spec, ""):
        problem = _problem(text)
        if problem is not None:
            errors.append(f"{path}: {'the key ' if is_key else ''}{problem}")
    return errors
