"""What ``list``, ``ps`` and ``state`` print, byte for byte as runc 1.1 prints it.

Tables are Go's ``tabwriter.NewWriter(out, 12, 1, 3, ' ', 0)``: each column as
wide as its widest cell plus 3, at least 12; the last cell of a line is not
padded.  JSON is Go's: ``state`` indented with two spaces and no final newline,
``list``/``ps`` compact with one (``null`` for no containers, as runc).
"""

from __future__ import annotations

from .._leanjson import dumps, dumps_indented
from ._errors import OciUsageError as UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from typing import Any

LIST_HEADER = ("ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER")
FORMATS = ("table", "json")


def check_format(name: str) -> None:
    if name not in FORMATS:
        raise UsageError("invalid format option")


def tabulate(rows: Sequence[Sequence[str]], minwidth: int = 12, padding: int = 3) -> str:
    """Go's tabwriter for rows of equal length (every row a line, every line ends in \\n)."""
    if not rows:
        return ""
    columns = len(rows[0]) - 1  # the last cell is not aligned
    widths = [max(minwidth, *(len(row[i]) + padding for row in rows)) for i in range(columns)]
    lines = ("".join(map(str.ljust, row, widths)) + row[-1] for row in rows)
    return "".join(line + "\n" for line in lines)


def state_json(document: dict[str, Any]) -> str:
    """``runc state``: MarshalIndent with two spaces, no final newline."""
    return dumps_indented(document)


def list_output(documents: Sequence[dict[str, Any]], fmt: str, quiet: bool) -> str:
    """``runc list``: ids alone with ``-q``, else a table or a JSON array of states."""
    if quiet:
        return "".join(f"{d['id']}\n" for d in documents)
    check_format(fmt)
    if fmt == "json":
        return dumps(list(documents) or None) + "\n"
    rows = [LIST_HEADER] + [
        (d["id"], str(d["pid"]), d["status"], d["bundle"], d["created"], d["owner"])
        for d in documents
    ]
    return tabulate(rows)


def ps_json(pids: Iterable[int]) -> str:
    return dumps(list(pids)) + "\n"


def ps_argv(args: Sequence[str]) -> list[str]:
    """The ps command runc runs for ``ps ID [ps options]``: ``ps -ef`` by default."""
    return ["ps", *(args or ["-ef"])]


def ps_filter(output: str, pids: Iterable[int]) -> str:
    """runc's ps table: ps's header, then only the lines whose PID column is in ``pids``."""
    lines = output.split("\n")
    titles = lines[0].split()
    if "PID" not in titles:
        raise ValueError("couldn't find PID field in ps output")
    index = titles.index("PID")
    wanted = set(pids)
    kept = [lines[0]]
    for line in lines[1:]:
        if not line:
            continue
        field = line.split()[index]
        if not field.lstrip("+-").isdigit():
            raise ValueError(
                f'unable to parse pid: strconv.Atoi: parsing "{field}": invalid syntax'
            )
        if int(field) in wanted:
            kept.append(line)
    return "".join(line + "\n" for line in kept)


def owner_name(uid: int) -> str:
    """The user name runc's list shows, ``#<uid>`` when there is none."""
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"#{uid}"
