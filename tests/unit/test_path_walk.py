"""The openat2 fallback walk must resolve every path exactly as openat2(RESOLVE_IN_ROOT) does."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from asyncinit._fs import _path
from asyncinit._fs._walk import walk_in_root
from asyncinit._syscalls import RESOLVE_IN_ROOT, RESOLVE_NO_MAGICLINKS, openat2

PATHS = [
    ".",
    "/",
    "a",
    "a/b",
    "/a/./b/",
    "abs",
    "abs/..",
    "abs/../..",
    "rel",
    "rel/../../..",
    "up",
    "up/a/b",
    "upa/b",
    "loop",
    "dangling",
    "file",
    "file/x",
    "a/../../../../file",
    "/../../a",
    "link-to-file",
    "link-to-dir-link",
    "a/b/back",
    "missing/x",
]
FLAGS = [
    os.O_PATH,
    os.O_PATH | os.O_DIRECTORY,
    os.O_PATH | os.O_NOFOLLOW,
    os.O_RDONLY,
    os.O_RDONLY | os.O_DIRECTORY,
]


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    root = tmp_path_factory.mktemp("walk") / "root"
    (root / "a" / "b").mkdir(parents=True)
    (root / "file").write_text("x")
    for name, target in {
        "abs": "/a/b",
        "rel": "a/../a/b",
        "up": "../../../..",
        "upa": "../../../a",
        "loop": "loop",
        "dangling": "/nonexistent",
        "link-to-file": "/a/../file",
        "link-to-dir-link": "abs",
        "a/b/back": "../../up/file",
    }.items():
        (root / name).symlink_to(target)
    fd = os.open(root, os.O_PATH | os.O_DIRECTORY)
    yield fd
    os.close(fd)


def outcome(opener: object, rootfd: int, path: str, flags: int) -> tuple[str, object]:
    try:
        fd = opener(rootfd, path, flags)  # type: ignore[operator]
    except OSError as exc:
        return ("errno", exc.errno)
    try:
        info = os.fstat(fd)
        return ("file", (info.st_dev, info.st_ino, info.st_mode))
    finally:
        os.close(fd)


def kernel(rootfd: int, path: str, flags: int) -> int:
    return openat2(rootfd, path.lstrip("/") or ".", flags, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)


@pytest.mark.parametrize("flags", FLAGS)
@pytest.mark.parametrize("path", PATHS)
def test_walk_matches_openat2(tree: int, path: str, flags: int) -> None:
    assert outcome(walk_in_root, tree, path, flags) == outcome(kernel, tree, path, flags)


@pytest.mark.parametrize(
    "path", ["proc/self/fd/0", "proc/self/root/etc", "proc/self/exe", "proc/self/status"]
)
def test_magic_links_refused_like_openat2(path: str) -> None:
    root = os.open("/", os.O_PATH | os.O_DIRECTORY)
    try:
        for flags in (os.O_PATH, os.O_RDONLY):
            assert outcome(walk_in_root, root, path, flags) == outcome(kernel, root, path, flags)
    finally:
        os.close(root)


def test_open_in_root_falls_back_on_enosys(
    tree: int, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def no_openat2(*_args: object) -> int:
        raise OSError(38, "openat2: Function not implemented")

    monkeypatch.setattr(_path, "openat2", no_openat2)
    monkeypatch.setattr(_path, "HAVE_OPENAT2", True)
    fd = _path.open_in_root(tree, "abs/../b")  # "abs" is /a/b: its ".." is /a
    try:
        assert os.readlink(f"/proc/self/fd/{fd}").endswith("/root/a/b")
    finally:
        os.close(fd)
    assert _path.HAVE_OPENAT2 is False
    made = _path.mkdir_all_in_root(tree, "up/new/dir")  # "up" climbs no higher than the root
    try:
        assert os.readlink(f"/proc/self/fd/{made}").endswith("/root/new/dir")
    finally:
        os.close(made)


@pytest.mark.parametrize("have_openat2", [True, False], ids=["openat2", "walk"])
@pytest.mark.parametrize(("path", "named"), [("missing/x", "/missing/x"), ("/file/x", "/file/x")])
def test_errors_name_the_container_path_whichever_resolver_ran(
    tree: int, monkeypatch: pytest.MonkeyPatch, have_openat2: bool, path: str, named: str
) -> None:
    """openat2 is given "missing/x", the walk fails on one component: both say "/missing/x"."""
    monkeypatch.setattr(_path, "HAVE_OPENAT2", have_openat2)
    with pytest.raises((FileNotFoundError, NotADirectoryError)) as caught:
        _path.open_in_root(tree, path)
    assert caught.value.filename == named
