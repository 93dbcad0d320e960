"""Device-cgroup rules with runc's semantics (its ``devices.Emulator``).

The rules of ``linux.resources.devices`` are applied in order to an emulated
v1 devices cgroup: an ``a`` rule resets it to allow-all or deny-all, every
other rule adds or removes an exception.  The resulting state is what both
drivers enforce: v1 as ``devices.allow``/``devices.deny`` lines, v2 as an eBPF
program (``_bpf``).  As in runc, a rule that would punch a hole into a wildcard
exception is refused: cgroup v1 silently ignores it, which would leave access
open that the config meant to close.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final, NamedTuple

WILDCARD: Final = -1
_PERMS: Final = "rwm"
_LINE = re.compile(r"^([abc]) (\d+|\*):(\d+|\*) ([rwm]+)$")


class Rule(NamedTuple):
    """A normalized rule: type "a", "b" or "c"; -1 is a wildcard number."""

    type: str
    major: int
    minor: int
    access: str
    allow: bool

    def line(self) -> str:
        return f"{self.type} {_number(self.major)}:{_number(self.minor)} {self.access}"


def _number(value: int) -> str:
    return "*" if value == WILDCARD else str(value)


def _canonical(access: str) -> str:
    return "".join(p for p in _PERMS if p in access)


#: runc's AllowedDevices (libcontainer/specconv): appended after the config's rules.
DEFAULT_RULES: Final = (
    Rule("c", WILDCARD, WILDCARD, "m", True),
    Rule("b", WILDCARD, WILDCARD, "m", True),
    Rule("c", 1, 3, "rwm", True),
    Rule("c", 1, 8, "rwm", True),
    Rule("c", 1, 7, "rwm", True),
    Rule("c", 5, 0, "rwm", True),
    Rule("c", 1, 5, "rwm", True),
    Rule("c", 1, 9, "rwm", True),
    Rule("c", 136, WILDCARD, "rwm", True),
    Rule("c", 5, 2, "rwm", True),
    Rule("c", 10, 200, "rwm", True),
)


def node_rule(type: str, major: int, minor: int) -> Rule:
    """The allow rule runc adds for a ``linux.devices`` node ("u" is a char device)."""
    return Rule("b" if type == "b" else "c", major, minor, "rwm", True)


class DeviceRuleError(ValueError):
    """A rule cgroup v1 cannot express faithfully (runc refuses it too)."""


class Emulator:
    """The state of a devices cgroup: a default and the exceptions to it."""

    def __init__(self, default_allow: bool = False) -> None:
        self.default_allow = default_allow
        self.exceptions: dict[tuple[str, int, int], str] = {}

    def apply(self, rule: Rule) -> None:
        if rule.type == "a":
            self.default_allow = rule.allow
            self.exceptions = {}
        elif rule.allow == self.default_allow:
            self._remove(rule)
        else:
            key = (rule.type, rule.major, rule.minor)
            self.exceptions[key] = _canonical(self.exceptions.get(key, "") + rule.access)

    def _remove(self, rule: Rule) -> None:
        key = (rule.type, rule.major, rule.minor)
        for partial in (
            (rule.type, WILDCARD, rule.minor),
            (rule.type, rule.major, WILDCARD),
            (rule.type, WILDCARD, WILDCARD),
        ):
            if partial != key and set(self.exceptions.get(partial, "")) & set(rule.access):
                held = Rule(*partial, self.exceptions[partial], not rule.allow)
                raise DeviceRuleError(
                    f"{rule.line()} cannot punch a hole in the wildcard rule {held.line()}"
                    " (cgroup v1 would silently ignore it)"
                )
        left = _canonical("".join(p for p in self.exceptions.get(key, "") if p not in rule.access))
        if left:
            self.exceptions[key] = left
        else:
            self.exceptions.pop(key, None)

    def rules(self) -> list[Rule]:
        """The exceptions, sorted as runc sorts them (major, minor, type)."""
        ordered = sorted(self.exceptions.items(), key=lambda kv: (kv[0][1], kv[0][2], kv[0][0]))
        return [
            Rule(t, major, minor, access, not self.default_allow)
            for (t, major, minor), access in ordered
        ]

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Emulator)
            and self.default_allow == other.default_allow
            and self.exceptions == other.exceptions
        )

    __hash__ = None  # type: ignore[assignment]


def emulate(rules: Iterable[Rule]) -> Emulator:
    """The state a deny-all cgroup reaches through ``rules``."""
    emulator = Emulator()
    for rule in rules:
        emulator.apply(rule)
    return emulator


def _parse_number(text: str) -> int:
    return WILDCARD if text == "*" else int(text)


def from_list(text: str) -> Emulator:
    """The state ``devices.list`` shows (an allow-list; ``a *:* rwm`` means allow-all)."""
    emulator = Emulator()
    for line in text.splitlines():
        match = _LINE.match(line.strip())
        if match is None:
            raise DeviceRuleError(f"devices.list line not understood: {line!r}")
        kind, major, minor, access = match.groups()
        emulator.apply(Rule(kind, _parse_number(major), _parse_number(minor), access, True))
    return emulator


def transition(source: Emulator, target: Emulator) -> list[Rule]:
    """The least disruptive rules that take a v1 cgroup from ``source`` to ``target``.

    An allow-all source cannot be read back exactly (devices.list does not show
    its deny exceptions), so it always restarts from the target's default.
    """
    out: list[Rule] = []
    old = source.exceptions
    if source.default_allow or source.default_allow != target.default_allow:
        out.append(Rule("a", WILDCARD, WILDCARD, "rwm", target.default_allow))
        old = {}
    for (kind, major, minor), access in sorted(
        old.items(), key=lambda kv: (kv[0][1], kv[0][2], kv[0][0])
    ):
        dropped = "".join(
            p for p in access if p not in target.exceptions.get((kind, major, minor), "")
        )
        if dropped:
            out.append(Rule(kind, major, minor, dropped, target.default_allow))
    for rule in target.rules():
        gained = "".join(p for p in rule.access if p not in old.get(rule[:3], ""))
        if gained:
            out.append(rule._replace(access=gained))
    return out


def v1_writes(rules: Iterable[Rule]) -> list[list[str]]:
    """[file, line] writes for ``devices.allow``/``devices.deny``."""
    return [["devices.allow" if r.allow else "devices.deny", r.line()] for r in rules]
