"""The public API is what asyncinit/__init__.py says it is, and stays lean to import."""

from __future__ import annotations

import importlib
import subprocess
import sys
import typing
from typing import Any

import pytest

import asyncinit
from asyncinit import spawn
from tests.support.containers import MakeConfig, needs_root
from tests.support.hostile import fork_server_pid


def test_every_public_name_resolves() -> None:
    for name in asyncinit.__all__:
        assert getattr(asyncinit, name) is not None, name
    assert set(asyncinit.__all__) <= set(dir(asyncinit))


def test_each_public_name_is_exported_by_its_module() -> None:
    """``_WHERE`` and each defining module's ``__all__`` agree (explicit exports)."""
    for name, module in asyncinit._WHERE.items():
        assert name in importlib.import_module(module, "asyncinit").__all__, (name, module)
    with pytest.raises(ValueError, match="not in asyncinit's public API"):
        asyncinit._publish(test_errors_form_one_hierarchy)


def test_errors_form_one_hierarchy() -> None:
    for name in (
        "ConfigError",
        "InitError",
        "HookError",
        "ContainerStartError",
        "NetworkError",
        "UsageError",
    ):
        assert issubclass(getattr(asyncinit, name), asyncinit.AsyncInitError), name
    assert issubclass(asyncinit.InitError, OSError)


#: Classes with annotations keep their module: typing resolves the annotations there.
ANNOTATED = {"Spec", "PythonHooks"}


def test_public_objects_show_the_public_module() -> None:
    """As trio does: ``asyncinit.Container``, not ``asyncinit.parent._container.Container``."""
    for name in asyncinit.__all__:
        value = getattr(asyncinit, name)
        if name in ANNOTATED:
            assert value.__module__.startswith("asyncinit."), name
        elif isinstance(value, type) or callable(value):
            assert value.__module__ == "asyncinit", name
    assert typing.get_type_hints(asyncinit.Spec)  # what cattrs needs to structure a config


def test_errors_show_the_public_module_however_they_were_imported() -> None:
    """A traceback names ``asyncinit.InitError`` even if nobody touched ``asyncinit.X``."""
    code = (
        "from asyncinit._errors import InitError; from asyncinit.parent._spawn import spawn; "
        "print(InitError.__module__, spawn.__module__)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == ["asyncinit", "asyncinit"]


def test_protocol_errors_are_start_errors() -> None:
    """What escapes spawn() when a peer breaks the protocol is a ContainerStartError."""
    from asyncinit.sync_pipe import PeerGone, ProtocolError

    assert issubclass(ProtocolError, asyncinit.ContainerStartError)
    assert issubclass(PeerGone, asyncinit.ContainerStartError)


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_the_fork_server_warms_the_inits_own_inbox(
    backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The warm-up runs the init's Inbox, not a copy of it that could drift away."""
    from asyncinit.forkserver import _warmup
    from asyncinit.init._inbox import Inbox

    replies: list[str] = []
    real_reply = Inbox.reply

    async def counting_reply(self: Inbox, stage: str, kind: str) -> Any:
        replies.append(kind)
        return await real_reply(self, stage, kind)

    monkeypatch.setattr(Inbox, "reply", counting_reply)
    _warmup.warm_up(backend)
    assert replies == ["ready"] * _warmup._RUNS


def test_the_init_path_imports_neither_cattrs_nor_pyroute2() -> None:
    """PID 1 (and the fork server) must not pay for the parent's imports."""
    code = (
        "import sys, asyncinit.init._entry, asyncinit.forkserver._server; "
        "print(sorted(m for m in ('cattrs', 'pyroute2', 'trio', 'asyncinit.config') "
        "if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_tls_is_refused_in_the_fork_server() -> None:
    """The fork server's stand-in for ssl satisfies imports and refuses any real use."""
    from asyncinit.forkserver._boot import _NoTLS

    ssl = _NoTLS("ssl")
    assert issubclass(ssl.SSLError, Exception)
    assert ssl.SSLError is ssl.SSLError  # one placeholder per name
    with pytest.raises(RuntimeError, match=r"ssl\.SSLContext: TLS is not available"):
        ssl.SSLContext()
    with pytest.raises(AttributeError):
        ssl.__path__  # noqa: B018  (the import system probes dunders)


@pytest.mark.anyio
@pytest.mark.integration
@needs_root
async def test_the_fork_server_maps_no_tls_library(make_config: MakeConfig) -> None:
    """libssl and libcrypto (3.5 MiB) would sit in every init and supervising PID 1.

    (Whichever backend the server loaded: trio brings hashlib, whose OpenSSL half is
    kept out too.)
    """
    for backend in ("asyncio", "trio"):  # the server loads trio for the second
        async with await spawn(make_config("true"), backend=backend) as container:
            assert await container.wait() == 0
    server = fork_server_pid()
    assert server is not None
    with open(f"/proc/{server}/maps") as maps:
        libraries = {line.split()[-1] for line in maps if "/" in line}
    assert not [lib for lib in libraries if "libssl" in lib or "libcrypto" in lib]
