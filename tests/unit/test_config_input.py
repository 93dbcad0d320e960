"""Hostile config input: every bad value is a ConfigError naming its JSON path.

Issue 12 ("Defects found by independent testing"): a uid of 4294967295 ran the
workload as root ((uid_t)-1 is "leave unchanged" to setresuid), a NUL byte
escaped as a bare ValueError, a config nested 10,000 levels deep as a
RecursionError.  Here each of those, the rest of their class, and a property
test: whatever a mutation of runc's default config holds, loading and compiling
it either succeeds or raises ConfigError, never another exception.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asyncinit._errors import UsageError
from asyncinit.config import ConfigError, ConfigWarning, check_spec, load_config, spec_from_dict
from asyncinit.config._read import MAX_DEPTH
from asyncinit.parent._compile import compile_spec
from tests.support.configs import USERNS, good

ID_MAX = 2**31 - 1
IDS = f"must be a number from 0 to {ID_MAX}"


def errors_of(data: object) -> list[str]:
    with pytest.raises(ConfigError) as info:
        spec_from_dict(data)  # type: ignore[arg-type]
    return info.value.errors


def with_(*edits: tuple[str, object], base: dict[str, Any] | None = None) -> dict[str, Any]:
    """``good()`` with dotted-path edits (numeric parts index lists; may append)."""
    data = good() if base is None else base
    for path, value in edits:
        *parents, last = path.split(".")
        node: Any = data
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
        if isinstance(node, list):
            index = int(last)
            node[index : index + 1] = [copy.deepcopy(value)]
        else:
            node[last] = copy.deepcopy(value)
    return data


def nested(depth: int) -> object:
    value: object = []
    for _ in range(depth - 1):
        value = {"a": value}
    return value


# --- item 1: ids ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("process.user.uid", 4294967295),
        ("process.user.gid", 4294967295),
        ("process.user.uid", ID_MAX + 1),
        ("process.user.gid", -1),
        ("process.user.additionalGids.0", 4294967295),
        ("process.user.additionalGids.0", ID_MAX + 1),
        ("linux.devices.0.uid", 4294967295),
        ("linux.devices.0.gid", ID_MAX + 1),
    ],
)
def test_ids_outside_runcs_range_are_refused(path: str, value: int) -> None:
    data = with_(("linux.devices", [{"type": "c", "path": "/dev/fuse", "major": 10, "minor": 229}]))
    data["process"]["user"].setdefault("additionalGids", [])
    field = path.replace(".0", "[0]")
    assert errors_of(with_((path, value), base=data)) == [
        f"{field}: must be between 0 and {ID_MAX}, got {value}"
    ]


def test_ids_at_the_top_of_the_range_are_accepted() -> None:
    spec = spec_from_dict(
        with_(
            ("process.user", {"uid": ID_MAX, "gid": ID_MAX, "additionalGids": [ID_MAX]}),
            ("linux.devices", [{"type": "c", "path": "/dev/x", "major": 1, "minor": 3}]),
            ("linux.devices.0.uid", ID_MAX),
        )
    )
    assert spec.process is not None
    assert spec.process.user.uid == ID_MAX


@pytest.mark.parametrize(
    ("mapping", "expected"),
    [
        (
            {"containerID": 4294967295, "hostID": 0, "size": 1},
            "linux.uidMappings[0].containerID: must be between 0 and 4294967294, got 4294967295",
        ),
        (
            {"containerID": 0, "hostID": 4294967295, "size": 1},
            "linux.uidMappings[0].hostID: must be between 0 and 4294967294, got 4294967295",
        ),
        (
            {"containerID": 0, "hostID": 1, "size": 4294967295},
            "linux.uidMappings[0].size: hostID 1 + size 4294967295 runs past 4294967294, "
            "the last id the kernel maps",
        ),
        (
            {"containerID": 4294967290, "hostID": 0, "size": 10},
            "linux.uidMappings[0].size: containerID 4294967290 + size 10 runs past 4294967294, "
            "the last id the kernel maps",
        ),
        (
            {"containerID": 0, "hostID": 0, "size": 4294967296},
            "linux.uidMappings[0].size: must be between 1 and 4294967295, got 4294967296",
        ),
    ],
)
def test_mappings_the_kernel_would_refuse_name_the_field(
    mapping: dict[str, int], expected: str
) -> None:
    data = with_(*USERNS, ("linux.uidMappings", [mapping]))
    assert errors_of(data) == [expected]


def test_the_whole_id_space_maps() -> None:
    """The initial namespace's own map, 0 0 4294967295, is valid."""
    whole = [{"containerID": 0, "hostID": 0, "size": 4294967295}]
    spec_from_dict(with_(*USERNS, ("linux.uidMappings", whole), ("linux.gidMappings", whole)))


def test_overlapping_and_oversized_maps_are_refused() -> None:
    overlap = [
        {"containerID": 0, "hostID": 100000, "size": 10},
        {"containerID": 20, "hostID": 100005, "size": 10},
        {"containerID": 5, "hostID": 200000, "size": 10},
    ]
    assert errors_of(with_(*USERNS, ("linux.uidMappings", overlap))) == [
        "linux.uidMappings[2]: its container ids overlap linux.uidMappings[0]",
        "linux.uidMappings[1]: its host ids overlap linux.uidMappings[0]",
    ]
    many = [{"containerID": i, "hostID": 100000 + i, "size": 1} for i in range(341)]
    assert errors_of(with_(*USERNS, ("linux.uidMappings", many))) == [
        "linux.uidMappings: more than 340 entries (341)"
    ]
    wide = [{"containerID": 10**9 + i, "hostID": 3 * 10**9 + i, "size": 1} for i in range(200)]
    assert errors_of(with_(*USERNS, ("linux.uidMappings", wide))) == [
        "linux.uidMappings: 4800 bytes as a map; the kernel takes at most 4095"
    ]


def test_ids_used_in_a_new_user_namespace_must_be_mapped() -> None:
    """runc: "cannot set uid to unmapped user in user namespace"; setgroups and
    devpts's gid= fail with a bare EINVAL."""
    one = [{"containerID": 0, "hostID": 100000, "size": 1}]
    data = with_(
        *USERNS,
        ("linux.uidMappings", one),
        ("linux.gidMappings", one),
        ("process.user", {"uid": 5, "gid": 0, "additionalGids": [0, 7]}),
    )
    assert errors_of(data) == [
        "process.user.uid: uid 5 is not mapped in linux.uidMappings",
        "process.user.additionalGids[1]: gid 7 is not mapped in linux.gidMappings",
        "mounts[2].options[5]: gid 5 is not mapped in linux.gidMappings",
    ]
    # Joining a namespace by path: its maps are not known, nothing is checked.
    joined = with_(("linux.namespaces.5", {"type": "user", "path": "/proc/1/ns/user"}))
    joined["process"]["user"]["uid"] = 5
    spec_from_dict(joined)


@pytest.mark.parametrize(
    ("mount", "option", "expected"),
    [
        (1, "uid=4294967295", f"uid=4294967295: uid {IDS}"),
        (1, "gid=0x80000000", f"gid=0x80000000: gid {IDS}"),
        (1, "uid=-1", f"uid=-1: uid {IDS}"),
        (1, "uid=4294967296", f"uid=4294967296: uid {IDS}"),
        (1, "uid=1_000", f"uid=1_000: uid {IDS}"),
        (1, "mode=17777", "mode=17777: mode must be an octal mode up to 7777"),
        (1, "mode=0x1ff", "mode=0x1ff: mode must be an octal mode up to 7777"),
        (1, "mode=789", "mode=789: mode must be an octal mode up to 7777"),
        (1, "size=1m,uid=4294967295", f"uid=4294967295: uid {IDS}"),
        (2, "ptmxmode=10666", "ptmxmode=10666: ptmxmode must be an octal mode up to 7777"),
        (2, "gid=", f"gid=: gid {IDS}"),
        (0, "gid=4294967295", f"gid=4294967295: gid {IDS}"),
    ],
)
def test_owner_and_mode_options_are_read_as_the_kernel_reads_them(
    mount: int, option: str, expected: str
) -> None:
    data = good()
    data["mounts"][mount]["options"] = [option]
    assert errors_of(data) == [f"mounts[{mount}].options[0]: {expected}"]


def test_kernel_number_syntax_is_accepted() -> None:
    """kstrtouint base 0: 0x.. is hex, a leading 0 octal (gid=010 is group 8)."""
    data = with_(*USERNS)
    data["mounts"][1]["options"] = ["uid=0x10", "gid=010", "mode=+01777"]
    data["linux"]["uidMappings"] = [{"containerID": 16, "hostID": 100000, "size": 1}]
    data["linux"]["gidMappings"] = [
        {"containerID": 8, "hostID": 100000, "size": 1},
        {"containerID": 0, "hostID": 200000, "size": 6},
    ]
    data["process"]["user"]["uid"] = 16
    spec_from_dict(data)


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            ("linux.devices", [{"type": "c", "path": "/dev/x", "major": 4096, "minor": 0}]),
            "linux.devices[0].major: must be between 0 and 4095, got 4096",
        ),
        (
            ("linux.devices", [{"type": "b", "path": "/dev/x", "major": 8, "minor": 2**20}]),
            "linux.devices[0].minor: must be between 0 and 1048575, got 1048576",
        ),
        (
            ("process.consoleSize", {"height": 65536, "width": 80}),
            "process.consoleSize.height: must be between 0 and 65535, got 65536",
        ),
        (
            ("hooks", {"poststop": [{"path": "/bin/true", "timeout": 2**31}]}),
            "hooks.poststop[0].timeout: must be at most 2147483647 seconds",
        ),
        (("hostname", "h" * 65), "hostname: longer than 64 bytes"),
        (
            ("process.user.additionalGids", list(range(65537))),
            "process.user.additionalGids: more than 65536 groups",
        ),
        (("domainname", "é" * 33), "domainname: longer than 64 bytes"),
    ],
)
def test_values_the_kernel_would_truncate_or_overflow_are_refused(
    edit: tuple[str, object], expected: str
) -> None:
    assert errors_of(with_(edit)) == [expected]


@pytest.mark.parametrize(
    ("path", "entry", "expected"),
    [
        ("process.env.2", "FOO", 'process.env[2]: must be NAME=VALUE, got "FOO"'),
        ("process.env.2", "=x", 'process.env[2]: the variable\'s name is empty in "=x"'),
        (
            "hooks.prestart",
            [{"path": "/bin/true", "env": ["A=1", "B"]}],
            'hooks.prestart[0].env[1]: must be NAME=VALUE, got "B"',
        ),
    ],
)
def test_env_entries_must_be_name_value(path: str, entry: object, expected: str) -> None:
    """runc refuses "FOO" ("invalid environment variable"); it must not become "FOO="."""
    assert errors_of(with_((path, entry))) == [expected]


# --- item 9: NUL bytes and other strings that cannot be C strings -----------------------

NUL_FIELDS = [
    ("root.path", "root.path"),
    ("process.args.0", "process.args[0]"),
    ("process.env.0", "process.env[0]"),
    ("process.cwd", "process.cwd"),
    ("hostname", "hostname"),
    ("mounts.0.destination", "mounts[0].destination"),
    ("mounts.0.type", "mounts[0].type"),
    ("mounts.1.options.0", "mounts[1].options[0]"),
    ("linux.maskedPaths.0", "linux.maskedPaths[0]"),
    ("linux.readonlyPaths.0", "linux.readonlyPaths[0]"),
    ("linux.namespaces.1.path", "linux.namespaces[1].path"),
    ("process.capabilities.bounding.0", "process.capabilities.bounding[0]"),
    ("process.rlimits.0.type", "process.rlimits[0].type"),
    ("hooks.prestart.0.path", "hooks.prestart[0].path"),
    ("hooks.prestart.0.args.0", "hooks.prestart[0].args[0]"),
    ("linux.devices.0.path", "linux.devices[0].path"),
    ("linux.rootfsPropagation", "linux.rootfsPropagation"),
]


@pytest.mark.parametrize(("path", "field"), NUL_FIELDS)
@pytest.mark.parametrize(
    ("bad", "problem"),
    [
        ("\0", "contains a NUL byte"),
        ("\ud800", 'contains "\\ud800", a lone surrogate (not Unicode text)'),
        ("\udcff", 'contains "\\udcff", a lone surrogate (not Unicode text)'),
    ],
    ids=["nul", "surrogate", "surrogateescape"],
)
def test_strings_that_cannot_be_c_strings_are_refused(
    path: str, field: str, bad: str, problem: str
) -> None:
    data = with_(
        ("hooks", {"prestart": [{"path": "/bin/true", "args": ["true"]}]}),
        ("linux.devices", [{"type": "c", "path": "/dev/fuse", "major": 10, "minor": 229}]),
        ("linux.namespaces.1.path", "/proc/1/ns/net"),
    )
    node: Any = data
    *parents, last = path.split(".")
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    key: Any = int(last) if isinstance(node, list) else last
    node[key] = "/x" + bad + "y"
    assert errors_of(data) == [f"{field}: {problem}"]


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (("annotations", {"a\0": "b"}), 'annotations["a\\u0000"]: the key contains a NUL byte'),
        (("annotations", {"a": "b\0"}), 'annotations["a"]: contains a NUL byte'),
        (
            ("linux.sysctl", {"net.ipv4.ip_forward": "1\0"}),
            'linux.sysctl["net.ipv4.ip_forward"]: contains a NUL byte',
        ),
        (
            (
                "mounts.7",
                {
                    "destination": "/d",
                    "type": "bind",
                    "source": "/s",
                    "options": ["rbind"],
                    "premount": [{"path": "/x", "dir": "/\0"}],
                },
            ),
            "mounts[7].premount[0].dir: contains a NUL byte",
        ),
        (
            ("asyncinit", {"network": {"veth": [{"addresses": ["10.0.0.2\0/24"]}]}}),
            "asyncinit.network.veth[0].addresses[0]: contains a NUL byte",
        ),
    ],
)
def test_nul_in_keys_values_and_nested_fields(edit: tuple[str, object], expected: str) -> None:
    assert errors_of(with_(edit)) == [expected]


def test_str_subclasses_are_checked_too() -> None:
    """cattrs keeps a str subclass (a StrEnum...) as it is: the scan must see it."""

    class Name(str):
        pass

    data = good()
    data["root"]["path"] = Name("root\0fs")
    data["annotations"] = {Name("k\0"): "v"}
    assert errors_of(data) == [
        "root.path: contains a NUL byte",
        'annotations["k\\u0000"]: the key contains a NUL byte',
    ]


def test_every_modelled_string_is_checked() -> None:
    """Each string of a full config, one at a time, with a NUL: each is named."""
    data = with_(
        ("hooks", {"poststop": [{"path": "/p", "args": ["a"], "env": ["A=1"]}]}),
        ("annotations", {"k": "v"}),
        ("domainname", "d"),
        ("linux.sysctl", {"kernel.shmmax": "1"}),
        ("linux.cgroupsPath", "/c"),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConfigWarning)
        spec_from_dict(data)

    def strings(node: Any, path: list[Any]) -> list[list[Any]]:
        if isinstance(node, str):
            return [path]
        if not isinstance(node, dict | list):
            return []
        items = node.items() if isinstance(node, dict) else enumerate(node)
        return [p for key, child in items for p in strings(child, [*path, key])]

    paths = strings(data, [])
    assert len(paths) > 60
    for path in paths:
        broken = copy.deepcopy(data)
        node = broken
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] += "\0"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConfigWarning)
            errors = errors_of(broken)
        assert len(errors) == 1, (path, errors)
        assert errors[0].endswith(": contains a NUL byte"), (path, errors)


# --- item 10: nesting, and the rest of what used to escape as a bare exception ----------


def test_deep_nesting_in_a_dict_is_a_config_error() -> None:
    """Named by the first two keys on the way down."""
    deep = nested(10_000)
    lists: object = []
    for _ in range(10_000):
        lists = [lists]
    for parent, key, value, named in (
        ("linux", "resources", deep, "linux.resources"),
        ("linux", "seccomp", lists, "linux.seccomp"),
        (None, "annotations", deep, "annotations.a"),
        (None, "somethingUnknown", lists, "somethingUnknown[0]"),
    ):
        data = good()
        (data[parent] if parent else data)[key] = value
        assert errors_of(data) == [f"{named}: nested too deeply (more than {MAX_DEPTH} levels)"]


def test_nesting_up_to_the_limit_is_accepted() -> None:
    data = with_(("somethingUnknown", nested(MAX_DEPTH - 1)))
    spec_from_dict(data)
    data["somethingUnknown"] = nested(MAX_DEPTH)
    assert errors_of(data) == [
        f"somethingUnknown.a: nested too deeply (more than {MAX_DEPTH} levels)"
    ]


def test_deep_nesting_in_config_json_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    text = json.dumps(good())
    path.write_text(text[:-1] + ', "x": ' + "[" * 10_000 + "]" * 10_000 + "}")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.errors == [f"config.json: nested too deeply (more than {MAX_DEPTH} levels)"]
    path.write_text(text[:-1] + ', "x": ' + '{"a":' * 100 + "1" + "}" * 100 + "}")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.errors == [f"x.a: nested too deeply (more than {MAX_DEPTH} levels)"]


def test_deep_nesting_in_a_spec_is_a_config_error() -> None:
    spec = spec_from_dict(good())
    assert spec.linux is not None
    deep = attrs.evolve(spec, linux=attrs.evolve(spec.linux, seccomp=nested(10_000)))  # type: ignore[arg-type]  # deliberately
    with pytest.raises(ConfigError, match="nested too deeply"):
        check_spec(deep)


def test_a_spec_with_wrong_python_types_is_a_config_error() -> None:
    spec = spec_from_dict(good())
    assert spec.process is not None
    cases = [
        (attrs.evolve(spec, hostname=5), "hostname: expected a string, got 5"),  # type: ignore[arg-type]
        (
            attrs.evolve(spec, process=attrs.evolve(spec.process, args="sh")),  # type: ignore[arg-type]
            'process.args: expected an array, got "sh"',
        ),
        (
            attrs.evolve(spec, process=attrs.evolve(spec.process, user={"uid": "0"})),  # type: ignore[arg-type]
            'process.user.uid: expected an integer, got "0"',
        ),
        (attrs.evolve(spec, hostname="a\0b"), "hostname: contains a NUL byte"),
    ]
    for bad, expected in cases:
        with pytest.raises(ConfigError) as info:
            check_spec(bad)
        assert expected in info.value.errors
    assert check_spec(spec) == spec


def test_keys_given_twice_are_refused(tmp_path: Path) -> None:
    """Parsers disagree on which value wins; the runtime must not read another
    config than a checker did."""
    path = tmp_path / "config.json"
    text = json.dumps(good())
    path.write_text(
        text.replace('"uid": 0', '"uid": 0, "uid": 1000').replace(
            '"hostname": "runc"', '"hostname": "a", "hostname": "b"'
        )
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.errors == [
        "hostname: key given more than once",
        "process.user.uid: key given more than once",
    ]


def test_config_json_that_is_not_a_readable_regular_file(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)  # opening it for reading would wait for a writer for ever
    directory = tmp_path / "dir.json"
    directory.mkdir()
    for path, expected in (
        (fifo, "fifo.json: not a regular file"),
        (directory, "dir.json: not a regular file"),
        (Path("/dev/zero"), "zero: not a regular file"),
        (tmp_path / "a\0b", '"a\\u0000b": cannot read: the path contains a NUL byte'),
        (os.fsencode(tmp_path / "a\0b"), '"a\\u0000b": cannot read: the path contains a NUL byte'),
    ):
        with pytest.raises(ConfigError) as info:
            load_config(path)  # type: ignore[arg-type]  # bytes too, on purpose
        assert info.value.errors == [expected]
    big = tmp_path / "big.json"
    with big.open("wb") as f:
        f.truncate(17 * 2**20)
    with pytest.raises(ConfigError, match=r"big\.json: larger than 16 MiB"):
        load_config(big)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"\xef\xbb\xbf{}", "invalid JSON at line 1 column 1: Unexpected UTF-8 BOM"),
        (b'{"a": "\xff"}', "not valid UTF-8 at byte 7"),
        (b'{"a": 1' + b"0" * 5000 + b"}", "invalid JSON: a number too long"),
        (b'{"a": Infinity}', "invalid JSON: Infinity is not valid JSON"),
        (b'{"ociVersion": "1", "process": {"user": {"uid": 1e400}}}', None),
    ],
)
def test_malformed_json_is_a_config_error(
    tmp_path: Path, content: bytes, expected: str | None
) -> None:
    path = tmp_path / "config.json"
    path.write_bytes(content)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    if expected is not None:
        assert info.value.errors[0].startswith(f"config.json: {expected}")
    else:
        assert "process.user.uid: expected an integer, got Infinity" in info.value.errors


def test_huge_integers_are_shown_without_failing() -> None:
    assert errors_of(with_(("process.user.uid", 10**5000))) == [
        f"process.user.uid: must be between 0 and {ID_MAX}, got <int too large to show>"
    ]
    assert errors_of(with_(("process.rlimits.0.hard", 10**5000))) == [
        "process.rlimits[0].hard: must be between 0 and 18446744073709551615, "
        "got <int too large to show>"
    ]


def test_unusable_paths_at_compile_time_are_config_errors(tmp_path: Path) -> None:
    """A symlink loop (RuntimeError from Path.resolve) or a name too long (OSError)."""
    (tmp_path / "loop").symlink_to("loop")
    bind = {"destination": "/d", "type": "bind", "source": "loop", "options": ["rbind"]}
    for root, expected in (
        ("loop", f"root.path: {tmp_path}/loop: Too many levels of symbolic links"),
        ("x" * 300, f"root.path: {tmp_path}/{'x' * 300}: File name too long"),
    ):
        spec = spec_from_dict(with_(("root.path", root), ("mounts.7", bind)))
        with pytest.raises(ConfigError) as info:
            compile_spec(spec, tmp_path, "c")
        assert info.value.errors[:2] == [
            expected,
            "mounts[7].source: loop: Too many levels of symbolic links",
        ]
    with pytest.raises(UsageError, match="Too many levels of symbolic links"):
        compile_spec(spec_from_dict(good()), tmp_path / "loop", "c")


# --- property: nothing but ConfigError ------------------------------------------------

SPECIAL: st.SearchStrategy[Any] = st.sampled_from(
    [
        -1,
        0,
        1,
        ID_MAX,
        ID_MAX + 1,
        2**32 - 1,
        2**32,
        2**63,
        2**64,
        -(2**63),
        10**30,
        1.5,
        float("nan"),
        float("inf"),
        True,
        None,
        "",
        "/",
        "..",
        "a\0b",
        "\ud800",
        "\udcff",
        "=",
        "FOO",
        "mode=99999",
        "uid=4294967295",
        "rbind",
        "bind",
        "tmpfs",
        "user",
        "/proc",
        [],
        {},
        [[[[]]]],
    ]
).map(copy.deepcopy)  # a mutation may append to a list drawn from here


class Deep(dict[str, object]):
    """``nested(depth)`` that shows itself short: hypothesis prints failing examples."""

    def __init__(self, depth: int) -> None:
        super().__init__(a=nested(depth - 1))
        self.depth = depth

    def __repr__(self) -> str:
        return f"Deep({self.depth})"


#: Any character, NULs and lone surrogates included (st.text() leaves surrogates out).
CHARS = st.characters(codec=None, categories=None) | st.sampled_from("\0\ud800\udcff=/,")
TEXT = st.text(CHARS, max_size=12)
JSONISH = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | TEXT
    | SPECIAL
    | st.builds(Deep, st.sampled_from([MAX_DEPTH, MAX_DEPTH + 1, 5_000])),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(TEXT, children, max_size=4),
    max_leaves=8,
)


#: What a mangled string gets: mostly what breaks C strings, paths and env entries.
INSERTS = st.sampled_from(["\0", "\ud800", "\udcff", "/..", "=", ","]) | st.text(
    CHARS, min_size=1, max_size=2
)


def leaves(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """The path of every scalar (and Deep) in ``node``."""
    if isinstance(node, Deep):
        return [path]
    if isinstance(node, dict):
        return [p for key, child in node.items() for p in leaves(child, (*path, key))]
    if isinstance(node, list):
        return [p for key, child in enumerate(node) for p in leaves(child, (*path, key))]
    return [path]


def mutate(draw: st.DrawFn, node: Any, key: Any) -> None:
    """Replace, delete, mangle (a string) or add beside ``node[key]``."""
    child = node[key]
    action = draw(st.sampled_from(["replace", "delete", "add", "mangle", "mangle"]))
    if action == "mangle" and isinstance(child, str):
        at = draw(st.integers(0, len(child)))
        node[key] = child[:at] + draw(INSERTS) + child[at:]
    elif action == "delete":
        del node[key]
    elif action == "add" and isinstance(node, dict):
        node[draw(TEXT)] = draw(JSONISH)
    elif action == "add":
        node.append(draw(JSONISH))
    else:
        node[key] = draw(JSONISH)


@st.composite
def mutated_configs(draw: st.DrawFn) -> dict[str, Any]:
    """runc's default config (plus hooks, devices, a bind mount, maybe a user
    namespace) with 1-3 values changed: a scalar anywhere, or any node on a
    random walk down (replaced, removed, mangled or given a sibling)."""
    data = with_(
        ("hooks", {"prestart": [{"path": "/bin/true", "args": ["true"], "env": ["A=1"]}]}),
        ("linux.devices", [{"type": "c", "path": "/dev/fuse", "major": 10, "minor": 229}]),
        ("mounts.7", {"destination": "/d", "type": "bind", "source": "/", "options": ["rbind"]}),
    )
    if draw(st.booleans()):
        data = with_(*USERNS, base=data)
    for _ in range(draw(st.integers(1, 3))):
        node: Any = data
        if draw(st.booleans()):  # a scalar: most configs stay valid but for it
            *parents, key = draw(st.sampled_from(leaves(data)))
            for part in parents:
                node = node[part]
            mutate(draw, node, key)
            continue
        while keys := list(node) if isinstance(node, dict) else list(range(len(node))):
            key = draw(st.sampled_from(keys))
            if isinstance(node[key], dict | list) and node[key] and draw(st.booleans()):
                node = node[key]
                continue
            mutate(draw, node, key)
            break
    return data


def only_config_errors(data: dict[str, Any], bundle: str) -> None:
    """Load and compile ``data``: nothing but a ConfigError may come out."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConfigWarning)
        try:
            spec = spec_from_dict(data)
        except ConfigError:
            return
        with contextlib.suppress(ConfigError):
            compile_spec(spec, bundle, "prop")


@settings(
    max_examples=int(os.environ.get("HYPO_N", "400")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(mutated_configs())
def test_mutated_configs_load_or_raise_config_error(data: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as bundle:
        os.mkdir(os.path.join(bundle, "rootfs"))
        only_config_errors(data, bundle)
        try:
            text = json.dumps(data)
        except (ValueError, RecursionError):  # a 5000-digit integer, Deep(5000)
            return
        path = os.path.join(bundle, "config.json")
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        with warnings.catch_warnings(), contextlib.suppress(ConfigError):
            warnings.simplefilter("ignore", ConfigWarning)
            load_config(path)
