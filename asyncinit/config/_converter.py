"""The one cattrs converter for config.json, and the load/dump entry points.

cattrs' default hooks are lenient (``5`` becomes ``"5"``, ``"false"`` becomes True,
a string is an iterable of characters): a config that means something else than
it says must fail, so str/int/bool/array/object hooks here accept exactly the JSON
type asked for. Structural errors are collected with cattrs' detailed validation
and rendered with JSON paths (``linux.uidMappings[0].containerID``) by walking the
exception groups; semantic checks follow in ``_validate`` once the shape is right.
"""

from __future__ import annotations

import os
import typing
import warnings
from collections.abc import Callable, Mapping
from typing import Any, Final, TypeVar

import attrs
import cattrs
from cattrs.cols import homogenous_tuple_structure_factory, mapping_structure_factory
from cattrs.errors import ClassValidationError, ForbiddenExtraKeysError, IterableValidationError
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from .._errors import wrong_type
from .._lines import show
from ._model import STRICT_CLASSES, ConfigError, ConfigWarning, Spec, json_key
from ._read import TOO_DEEP, check_shape, read_json
from ._validate import validate

__all__ = ["CONVERTER", "load_config", "spec_from_dict", "spec_to_dict", "structure_at"]

T = TypeVar("T")


def _structure_str(value: object, _: type) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {show(value)}")
    return value


def _structure_int(value: object, _: type) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"expected an integer, got {show(value)}")
    return value


def _structure_bool(value: object, _: type) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"expected a boolean, got {show(value)}")
    return value


def _is_homogeneous_tuple(type_: type) -> bool:
    args = typing.get_args(type_)
    return typing.get_origin(type_) is tuple and len(args) == 2 and args[1] is Ellipsis


def _is_mapping(type_: type) -> bool:
    return typing.get_origin(type_) in (dict, Mapping)


def _array_hook(type_: type, converter: cattrs.Converter) -> Callable[[Any, Any], Any]:
    inner: Callable[[Any, Any], Any] = homogenous_tuple_structure_factory(type_, converter)

    def structure_array(value: object, t: type) -> object:
        if not isinstance(value, list | tuple):
            raise TypeError(f"expected an array, got {show(value)}")
        return inner(value, t)

    return structure_array


def _object_hook(type_: type, converter: cattrs.Converter) -> Callable[[Any, Any], Any]:
    inner: Callable[[Any, Any], Any] = mapping_structure_factory(type_, converter, dict)

    def structure_object(value: object, t: type) -> object:
        if not isinstance(value, Mapping):
            raise TypeError(f"expected an object, got {show(value)}")
        return inner(value, t)

    return structure_object


def _attrs_structure_hook(cls: type, converter: cattrs.Converter) -> Callable[[Any, Any], Any]:
    renames: dict[str, Any] = {f.name: override(rename=json_key(f)) for f in attrs.fields(cls)}
    inner: Callable[[Any, Any], Any] = make_dict_structure_fn(
        cls,
        converter,
        _cattrs_forbid_extra_keys=cls in STRICT_CLASSES,
        _cattrs_detailed_validation=True,
        **renames,
    )

    def structure_object(value: object, t: type) -> object:
        if not isinstance(value, Mapping):
            raise TypeError(f"expected an object, got {show(value)}")
        return inner(value, t)

    return structure_object


def _attrs_unstructure_hook(cls: type, converter: cattrs.Converter) -> Callable[[Any], Any]:
    """A value of another type is left as it is, for structuring to name it (check_spec)."""
    renames: dict[str, Any] = {f.name: override(rename=json_key(f)) for f in attrs.fields(cls)}
    inner: Callable[[Any], Any] = make_dict_unstructure_fn(
        cls, converter, _cattrs_omit_if_default=True, **renames
    )
    return lambda value: inner(value) if isinstance(value, cls) else value


def _array_unstructure_hook(type_: type, converter: cattrs.Converter) -> Callable[[Any], Any]:
    (elem, _) = typing.get_args(type_)
    return lambda value: (
        [converter.unstructure(item, elem) for item in value]
        if isinstance(value, list | tuple)
        else value
    )


def _make_converter() -> cattrs.Converter:
    conv = cattrs.Converter(detailed_validation=True, forbid_extra_keys=False)
    conv.register_structure_hook(str, _structure_str)
    conv.register_structure_hook(int, _structure_int)
    conv.register_structure_hook(bool, _structure_bool)
    conv.register_structure_hook_factory(_is_homogeneous_tuple, _array_hook)
    conv.register_structure_hook_factory(_is_mapping, _object_hook)
    conv.register_structure_hook_factory(attrs.has, _attrs_structure_hook)
    conv.register_unstructure_hook_factory(_is_homogeneous_tuple, _array_unstructure_hook)
    conv.register_unstructure_hook_func(_is_mapping, dict)
    conv.register_unstructure_hook_factory(attrs.has, _attrs_unstructure_hook)
    return conv


CONVERTER: Final = _make_converter()


def _child(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _collect(exc: BaseException, path: str, out: list[str]) -> None:
    """Flatten cattrs' nested exception groups into "json.path: message" lines."""
    if isinstance(exc, ClassValidationError):
        fields = attrs.fields_dict(exc.cl)
        with_notes, others = exc.group_exceptions()
        for sub, note in with_notes:
            field = fields.get(note.name)
            key = json_key(field) if field is not None else note.name
            _collect(sub, _child(path, key), out)
        for other in others:
            _collect(other, path, out)
    elif isinstance(exc, IterableValidationError):
        with_items, rest = exc.group_exceptions()
        for element, item in with_items:
            index = item.index
            suffix = f"[{index}]" if isinstance(index, int) else f"[{show(index)}]"
            _collect(element, path + suffix, out)
        for other in rest:
            _collect(other, path, out)
    elif isinstance(exc, BaseExceptionGroup):
        for member in exc.exceptions:
            _collect(member, path, out)
    elif isinstance(exc, ForbiddenExtraKeysError):
        out.extend(f"{_child(path, key)}: unknown field" for key in sorted(exc.extra_fields))
    elif isinstance(exc, KeyError):
        out.append(f"{path or '(root)'}: required field missing")
    else:
        out.append(f"{path or '(root)'}: {exc}")


def _structure(data: object) -> Spec:
    try:
        return CONVERTER.structure(data, Spec)
    except Exception as exc:  # cattrs wraps hook errors in groups; flatten them all
        errors: list[str] = []
        _collect(exc, "", errors)
        raise ConfigError(errors) from exc


def _from_dict(data: object, stacklevel: int) -> Spec:
    odd_strings = check_shape(data)
    return _checked(_structure(data), stacklevel + 1, check_strings=odd_strings)


def _checked(spec: Spec, stacklevel: int, *, check_strings: bool) -> Spec:
    errors, notices = validate(spec, check_strings=check_strings)
    if errors:
        raise ConfigError(errors)
    for notice in notices:
        warnings.warn(notice, ConfigWarning, stacklevel=stacklevel + 1)
    return spec


def check_spec(spec: Spec) -> Spec:
    """Validate a Spec built or changed in Python (attrs.evolve...) as a loaded one is.

    The Spec goes through config.json content and back, so a value of the wrong
    Python type (attrs does not check types) is a ConfigError naming its field,
    as it would be in a file.  Returns the reloaded Spec.
    """
    if not isinstance(spec, Spec):
        raise wrong_type("check_spec", "spec", spec, "a Spec (spec_from_dict takes a dict)")
    try:
        data = spec_to_dict(spec)
    except RecursionError as exc:  # a deep structure in a raw-JSON field
        raise ConfigError([f"(spec): {TOO_DEEP}"]) from exc
    except Exception as exc:  # a value of a type cattrs cannot unstructure
        raise ConfigError([f"(spec): not expressible as config.json: {show(exc)}"]) from exc
    return _from_dict(data, stacklevel=2)


def spec_from_dict(data: Mapping[str, Any]) -> Spec:
    """Structure and validate parsed config.json content.

    Raises ConfigError listing every problem; warns (ConfigWarning) about fields
    that are accepted but not acted upon.
    """
    return _from_dict(data, stacklevel=2)


def load_config(source: str | os.PathLike[str] | Mapping[str, Any]) -> Spec:
    """Load a config.json file (a path) or already-parsed content (a mapping).

    An unreadable file or invalid JSON is a ConfigError too, so callers need to
    handle only one exception type for "the config is unusable".
    """
    if isinstance(source, Mapping):
        return _from_dict(source, stacklevel=2)
    if not isinstance(source, str | bytes | os.PathLike):
        raise wrong_type("load_config", "source", source, "a path or a config.json dict")
    return _from_dict(read_json(source), stacklevel=2)


def spec_to_dict(spec: Spec) -> dict[str, Any]:
    """A Spec as config.json content: camelCase keys, unset/empty fields omitted."""
    result: dict[str, Any] = CONVERTER.unstructure(spec, Spec)
    return result


def structure_at(data: object, cls: type[T], path: str) -> T:
    """Structure ``data`` as ``cls`` with the config's strict hooks (no validation pass).

    For a part of config.json read on its own (``runc update --resources``):
    errors name the field under ``path`` (``linux.resources.memory.limit: ...``).
    """
    try:
        return CONVERTER.structure(data, cls)
    except Exception as exc:  # cattrs wraps hook errors in groups; flatten them all
        errors: list[str] = []
        _collect(exc, path, errors)
        raise ConfigError(errors) from exc
