"""asyncinit: start OCI containers from Python, with an asynchronous PID 1.

Public API::

    container = await asyncinit.spawn("bundle/config.json")
    async with container:
        code = await container.wait()

Names are imported on first use: the init and the fork server import
``asyncinit.<submodule>`` and must not pay for cattrs or the parent's modules.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not typing's: `import typing` costs the lean CLI milliseconds
if TYPE_CHECKING:
    from ._errors import AsyncInitError as AsyncInitError
    from ._errors import CgroupError as CgroupError
    from ._errors import ContainerStartError as ContainerStartError
    from ._errors import HookError as HookError
    from ._errors import InitError as InitError
    from ._errors import NetworkError as NetworkError
    from ._errors import UsageError as UsageError
    from .config import ConfigError as ConfigError
    from .config import ConfigWarning as ConfigWarning
    from .config import Spec as Spec
    from .config import default_spec_dict as default_spec_dict
    from .config import load_config as load_config
    from .parent._container import Container as Container
    from .parent._hooks import PythonHooks as PythonHooks
    from .parent._spawn import DEVNULL as DEVNULL
    from .parent._spawn import PIPE as PIPE
    from .parent._spawn import spawn as spawn

#: The public API, the one list: each name and the module it is imported from on first use.
_WHERE = {
    "DEVNULL": ".parent._spawn",
    "PIPE": ".parent._spawn",
    "AsyncInitError": "._errors",
    "CgroupError": "._errors",
    "ConfigError": ".config",
    "ConfigWarning": ".config",
    "Container": ".parent._container",
    "ContainerStartError": "._errors",
    "HookError": "._errors",
    "InitError": "._errors",
    "NetworkError": "._errors",
    "PythonHooks": ".parent._hooks",
    "Spec": ".config",
    "UsageError": "._errors",
    "default_spec_dict": ".config",
    "load_config": ".config",
    "spawn": ".parent._spawn",
}

__all__ = list(_WHERE)


def _publish(*objects: object) -> None:
    """Show ``objects`` (each named in ``_WHERE``) as ``asyncinit.NAME``, as trio does.

    Called at the end of a defining module with the public objects it defines
    (so tracebacks and reprs name the public path, whichever way the module was
    imported) and on first access.  A class with annotations keeps its module:
    ``typing.get_type_hints`` (and cattrs, for ``Spec``) resolves them in the
    namespace ``__module__`` names.
    """
    for value in objects:
        if getattr(value, "__name__", "") not in _WHERE:
            raise ValueError(f"{value!r} is not in asyncinit's public API (_WHERE)")
        if not value.__module__.startswith(__name__ + "."):
            continue
        if isinstance(value, type) and vars(value).get("__annotations__"):
            continue
        value.__module__ = __name__


def __getattr__(name: str) -> object:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'asyncinit' has no attribute {name!r}")
    from importlib import import_module  # here: `python -S` has not imported importlib yet

    value = getattr(import_module(module, __name__), name)
    if isinstance(value, type) or callable(value):  # PIPE and DEVNULL are ints
        _publish(value)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_WHERE])
