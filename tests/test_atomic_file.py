"""merkit.core.atomic's file half: a file is replaced only by a complete new one."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from merkit.core.atomic import atomic_file, write_bytes_atomic, write_text_atomic


def test_atomic_file_replaces_on_success_keeping_the_suffix(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "results.csv"
    with atomic_file(target) as temp:
        assert temp.parent == target.parent and temp.name.endswith(".tmp.csv")
        assert not target.exists()  # nothing is visible before the block ends
        temp.write_text("a,b\n")
    assert target.read_text() == "a,b\n"
    assert [p.name for p in target.parent.iterdir()] == ["results.csv"]
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask


def test_atomic_file_leaves_the_old_file_on_an_error(tmp_path: Path) -> None:
    target = tmp_path / "fold.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_file(target) as temp:
        temp.write_text("half")
        raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fold.json"]


def test_write_helpers(tmp_path: Path) -> None:
    assert write_text_atomic(tmp_path / "a.txt", "é\n").read_text(encoding="utf-8") == "é\n"
    assert write_bytes_atomic(tmp_path / "b.bin", b"\0\1").read_bytes() == b"\0\1"


def test_no_other_rename_dance_in_src() -> None:
    import merkit

    src = Path(merkit.__file__).parent
    offenders = [
        f"{path.relative_to(src)}:{n}"
        for path in src.rglob("*.py")
        if path.name != "atomic.py"
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if not line.lstrip().startswith("#")
        and any(
            call in line
            for call in (
                "os.replace(",
                "os.rename(",
                ".replace(target)",
                "temp.replace(",
                "mkstemp(",
            )
        )
    ]
    assert not offenders, offenders
