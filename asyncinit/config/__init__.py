"""config.json: typed model, strict loading with JSON-path errors, validation, defaults.

``load_config`` / ``spec_from_dict`` structure a config strictly (no type
coercion), then check it semantically, and raise one ConfigError listing every
problem. Fields asyncinit cannot enforce are refused when ignoring them would
weaken isolation, and accepted with a ConfigWarning otherwise (policy details in
``asyncinit.config._validate``).
"""

from ._converter import CONVERTER, check_spec, load_config, spec_from_dict, spec_to_dict
from ._default import default_spec_dict
from ._model import (
    CAPABILITIES,
    RLIMITS,
    Capabilities,
    Command,
    ConfigError,
    ConfigWarning,
    ConsoleSize,
    Device,
    ExecCPUAffinity,
    Extensions,
    Hook,
    Hooks,
    IDMapping,
    IOPriority,
    Linux,
    Mount,
    Namespace,
    NetworkConfig,
    Personality,
    Process,
    Rlimit,
    Root,
    Scheduler,
    Spec,
    TimeOffset,
    User,
    Veth,
)
from ._mount_options import KNOWN_MOUNT_OPTIONS, MountOptions, parse_mount_options
from ._validate import NAMESPACE_TYPES

__all__ = [
    "CAPABILITIES",
    "CONVERTER",
    "KNOWN_MOUNT_OPTIONS",
    "NAMESPACE_TYPES",
    "RLIMITS",
    "Capabilities",
    "Command",
    "ConfigError",
    "ConfigWarning",
    "ConsoleSize",
    "Device",
    "ExecCPUAffinity",
    "Extensions",
    "Hook",
    "Hooks",
    "IDMapping",
    "IOPriority",
    "Linux",
    "Mount",
    "MountOptions",
    "Namespace",
    "NetworkConfig",
    "Personality",
    "Process",
    "Rlimit",
    "Root",
    "Scheduler",
    "Spec",
    "TimeOffset",
    "User",
    "Veth",
    "check_spec",
    "default_spec_dict",
    "load_config",
    "parse_mount_options",
    "spec_from_dict",
    "spec_to_dict",
]
