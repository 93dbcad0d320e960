"""Signal names and numbers as ``runc kill`` reads them.

runc 1.1 (``parseSignal``): a decimal number (Go's ``strconv.Atoi``: optional
sign, digits only) is taken as is; anything else is upper-cased, given a
``SIG`` prefix if it lacks one and looked up in golang.org/x/sys/unix's table,
which has one name per number 1..31 (no SIGIOT/SIGPOLL/SIGCLD aliases, no
real-time names).  The table is Linux's generic numbering (x86, arm, arm64,
riscv, ppc, s390); mips, sparc and alpha number differently and are not
supported.  No ``signal`` module: building its enums costs the lean commands time.
"""

from __future__ import annotations

from ._errors import OciUsageError as UsageError

_NAMES = (
    "SIGHUP", "SIGINT", "SIGQUIT", "SIGILL", "SIGTRAP", "SIGABRT", "SIGBUS", "SIGFPE",
    "SIGKILL", "SIGUSR1", "SIGSEGV", "SIGUSR2", "SIGPIPE", "SIGALRM", "SIGTERM", "SIGSTKFLT",
    "SIGCHLD", "SIGCONT", "SIGSTOP", "SIGTSTP", "SIGTTIN", "SIGTTOU", "SIGURG", "SIGXCPU",
    "SIGXFSZ", "SIGVTALRM", "SIGPROF", "SIGWINCH", "SIGIO", "SIGPWR", "SIGSYS",
)  # fmt: skip
SIGNALS: dict[str, int] = {name: number for number, name in enumerate(_NAMES, start=1)}
SIGKILL = SIGNALS["SIGKILL"]
SIGTERM = SIGNALS["SIGTERM"]


def _atoi(text: str) -> int | None:
    digits = text[1:] if text[:1] in ("+", "-") else text
    if not digits or not digits.isascii() or not digits.isdigit():
        return None
    return int(text)


def parse_signal(text: str) -> int:
    """The signal ``runc kill ID <text>`` sends; UsageError ``unknown signal "X"`` otherwise."""
    number = _atoi(text)
    if number is not None:
        return number
    name = text.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    if name not in SIGNALS:
        raise UsageError(f'unknown signal "{text}"')
    return SIGNALS[name]


def signal_name(number: int) -> str:
    """``SIGTERM`` for 15; the number itself for one without a name."""
    for name, value in SIGNALS.items():
        if value == number:
            return name
    return str(number)
