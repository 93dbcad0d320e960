"""runc's command line, parsed as runc 1.1 parses it (urfave/cli v1 over Go's flag package).

What clients rely on, checked against runc 1.1.5 (tests/unit/test_oci_cli.py):

* a flag is ``-name`` or ``--name``, its value ``=value`` or the next argument
  (whatever it looks like); a bool flag takes ``=true``/``=false`` only; ``--``
  ends the flags; the first non-flag argument ends them too;
* global flags come before the command (podman: ``--log-format=json --log F
  create ...``), a command's own flags after it;
* except for ``exec`` and ``ps``, a command's defined flags may also follow its
  arguments (``delete ID --force``): urfave/cli moves them to the front first
  (``reorderArgs``); an unknown flag after the arguments stays an argument;
* short aliases are separate names (``-b``, ``-f``), never combined (``-dt``);
* errors are runc's words: ``flag provided but not defined: -x``,
  ``flag needs an argument: -x``, ``invalid value "v" for flag -x: parse error``,
  ``runc: "state" requires exactly 1 argument(s)`` (with ``asyncinit``).

No argparse, no re: ``asyncinit state`` and ``kill`` must start as fast as runc's.
"""

from __future__ import annotations

from ._errors import OciUsageError as UsageError
from ._errors import UnknownCommand

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

BOOL, STRING, STRINGS, UINT, INT, INTS = "bool", "string", "strings", "uint", "int", "ints"


Value = bool | str | int | list[str] | list[int] | None


_EMPTY: dict[str, Value] = {BOOL: False, STRING: "", STRINGS: [], UINT: 0, INT: 0, INTS: []}


class Flag:
    """One flag: its names (long first), kind, default and one line of help."""

    __slots__ = ("default", "help", "kind", "names")

    def __init__(self, names: str, kind: str, help: str, default: Value = None) -> None:
        self.names = tuple(n.strip() for n in names.split(","))
        self.kind = kind
        self.help = help
        self.default: Value = _EMPTY[kind] if default is None else default

    @property
    def name(self) -> str:
        return self.names[0]


class Command:
    """A runc command: flags, how many arguments (``exact``/``min``), help."""

    __slots__ = ("args_usage", "count", "flags", "most", "name", "reorder", "usage", "want")

    def __init__(
        self,
        name: str,
        usage: str,
        args_usage: str,
        flags: Sequence[Flag] = (),
        *,
        count: int = 1,
        want: str = "exactly",
        most: int | None = None,
        reorder: bool = True,
    ) -> None:
        self.name = name
        self.usage = usage
        self.args_usage = args_usage
        self.flags = (*flags, Flag("help, h", BOOL, "show help"))
        self.count = count
        self.want = want  # "exactly" or "a minimum of" (runc's checkArgs words)
        self.most = most
        self.reorder = reorder

    def check_count(self, args: Sequence[str], prog: str) -> None:
        """runc's checkArgs; its messages start with the program's name (os.Args[0])."""
        if (self.want == "exactly" and len(args) != self.count) or len(args) < self.count:
            wanted = f"{self.want} {self.count}"
        elif self.most is not None and len(args) > self.most:
            wanted = f"a maximum of {self.most}"
        else:
            return
        raise UsageError(f'{prog}: "{self.name}" requires {wanted} argument(s)')


class Invocation:
    """A parsed command line: global flags, the command, its flags and arguments.

    ``command`` is ``"help"`` or ``"version"`` when that was asked for
    (``--help``, ``-v``, ``create --help``: then ``args`` names the command).
    """

    __slots__ = ("args", "command", "flags", "globals")

    def __init__(
        self, globals: dict[str, Value], command: str, flags: dict[str, Value], args: list[str]
    ) -> None:
        self.globals = globals
        self.command = command
        self.flags = flags
        self.args = args

    def _value(self, name: str, kind: type) -> Value:
        value = self.flags[name] if name in self.flags else self.globals[name]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise TypeError(f"flag {name} is not a {kind.__name__}")
        return value

    def text(self, name: str) -> str:
        return str(self._value(name, str))

    def on(self, name: str) -> bool:
        return bool(self._value(name, bool))

    def number(self, name: str) -> int:
        value = self._value(name, int)
        assert isinstance(value, int)
        return value

    def strings(self, name: str) -> list[str]:
        value = self._value(name, list)
        assert isinstance(value, list)
        return [str(v) for v in value]


_TRUE = ("1", "t", "T", "true", "TRUE", "True")
_FALSE = ("0", "f", "F", "false", "FALSE", "False")


def _go_int(text: str, name: str, unsigned: bool) -> int:
    """Go's strconv.ParseUint/ParseInt in base 0: 0x, 0o, 0b and 0 (octal) prefixes, underscores."""
    sign = text[:1] if text[:1] in ("+", "-") and not unsigned else ""
    body = text[len(sign) :]
    try:
        if not body.isascii() or body != body.strip():
            raise ValueError(text)
        if len(body) > 1 and body[0] == "0" and body[1].isdigit():
            value = int(body, 8)
        else:
            value = int(body, 0)
    except ValueError:
        raise UsageError(f'invalid value "{text}" for flag -{name}: parse error') from None
    return -value if sign == "-" else value


def _set(flag: Flag, name: str, value: str | None, values: dict[str, Value]) -> None:
    if flag.kind == BOOL:
        if value is None or value in _TRUE:
            values[flag.name] = True
        elif value in _FALSE:
            values[flag.name] = False
        else:
            raise UsageError(f'invalid boolean value "{value}" for -{name}: parse error')
        return
    assert value is not None
    if flag.kind == STRING:
        values[flag.name] = value
    elif flag.kind in (UINT, INT):
        values[flag.name] = _go_int(value, name, unsigned=flag.kind == UINT)
    elif flag.kind == STRINGS:
        values[flag.name] = [*values[flag.name], value]  # type: ignore[misc]
    else:
        values[flag.name] = [*values[flag.name], _go_int(value, name, unsigned=False)]  # type: ignore[misc]


def parse_flags(flags: Sequence[Flag], argv: Sequence[str]) -> tuple[dict[str, Value], list[str]]:
    """Go's ``FlagSet.Parse``: the flags' values and the arguments left."""
    by_name = {name: flag for flag in flags for name in flag.names}
    values: dict[str, Value] = {
        flag.name: flag.default[:] if isinstance(flag.default, list) else flag.default
        for flag in flags
    }
    rest = list(argv)
    while rest:
        arg = rest[0]
        if len(arg) < 2 or arg[0] != "-":
            break
        rest.pop(0)
        if arg == "--":
            break
        name = arg[2:] if arg[1] == "-" else arg[1:]
        if not name or name[0] in "-=":
            raise UsageError(f"bad flag syntax: {arg}")
        name, eq, value = name.partition("=")
        flag = by_name.get(name)
        if flag is None:
            raise UsageError(f"flag provided but not defined: -{name}")
        if not eq and flag.kind != BOOL:
            if not rest:
                raise UsageError(f"flag needs an argument: -{name}")
            value = rest.pop(0)
        _set(flag, name, value if eq or flag.kind != BOOL else None, values)
    return values, rest


def reorder_args(flags: Sequence[Flag], argv: Sequence[str]) -> list[str]:
    """urfave/cli v1's ``reorderArgs``: defined flags (and a following value) to the front."""
    names = {name for flag in flags for name in flag.names}
    moved: list[str] = []
    kept: list[str] = []
    value_may_follow = False
    for index, arg in enumerate(argv):
        if arg == "--":
            kept.extend(argv[index:])
            break
        if value_may_follow and not arg.startswith("-"):
            value_may_follow = False
            moved.append(arg)
        elif arg.startswith("-") and arg.lstrip("-").partition("=")[0] in names:
            moved.append(arg)
            value_may_follow = "=" not in arg
        else:
            kept.append(arg)
    return moved + kept


def parse(
    argv: Sequence[str],
    commands: dict[str, Command],
    global_flags: Sequence[Flag],
    prog: str = "asyncinit",
) -> Invocation:
    """A whole command line (without the program name, which ``prog`` is)."""
    options, rest = parse_flags(global_flags, argv)
    if options.get("version"):
        return Invocation(options, "version", {}, [])
    if options.get("help") or not rest:
        return Invocation(options, "help", {}, [])
    name, *rest = rest
    command = commands.get(name)
    if command is None:
        raise UnknownCommand(f"No help topic for '{name}'\n")  # sic, with the newline
    if command.reorder:
        rest = reorder_args(command.flags, rest)
    flags, args = parse_flags(command.flags, rest)
    if flags.pop("help"):
        return Invocation(options, "help", {}, [name])
    command.check_count(args, prog)
    return Invocation(options, name, flags, args)
