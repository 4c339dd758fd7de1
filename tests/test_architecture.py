"""The package's shape: modules import one way (no cycles) and stay small.

Import cycles are found on grimp's import graph of ``merkit``. Every import statement counts,
including imports inside functions and imports under ``if TYPE_CHECKING:``: a module that names
another's types depends on it as much as one that calls it (a rename there breaks this one, and a
reader must know both), and a function-level or TYPE_CHECKING import is the usual way to hide a
cycle from the interpreter rather than remove it. The fix for a cycle is to move the shared part
into a lower module both import (or declare a ``typing.Protocol`` in the lower one).
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from pathlib import Path

import grimp
import numpy as np
import pytest
from scipy.sparse import coo_array
from scipy.sparse.csgraph import connected_components

import merkit

PACKAGE_DIR = Path(merkit.__file__).resolve().parent
MAX_LINES = 500

# A module over MAX_LINES must be one cohesive algorithm; each entry says which.
LONG_MODULES_ALLOWED: Mapping[str, str] = {
    "features/own.py": (
        "one feature extractor: six families of frame-level descriptors that share one STFT "
        "analysis per clip, summarised into one fixed, named vector"
    ),
    "datasets/synthetic.py": (
        "one generator: a song's emotion cues, composition and rendering from (seed, index, "
        "quadrant), plus the thin dataset adapter that serves the rendered songs"
    ),
    "audio.py": (
        "one job: a file to the mono waveform every method starts from (the one decoder that "
        "training and prediction share, mixdown, resampling, level, crop)"
    ),
}


def import_cycles(package: str) -> list[list[str]]:
    """Groups of modules of ``package`` that import each other (directly or via others).

    Parameters
    ----------
    package : str
        Importable top-level package name.

    Returns
    -------
    list of list of str
        Each strongly connected component of more than one module (sorted), or of one module
        that imports itself; empty when the import graph has no cycle.
    """
    graph = grimp.build_graph(package, cache_dir=None, exclude_type_checking_imports=False)
    modules = sorted(graph.modules)
    index = {name: i for i, name in enumerate(modules)}
    edges = [
        (index[importer], index[imported])
        for importer in modules
        for imported in graph.find_modules_directly_imported_by(importer)
    ]
    rows = np.array([importer for importer, _ in edges], dtype=np.int64)
    cols = np.array([imported for _, imported in edges], dtype=np.int64)
    adjacency = coo_array((np.ones(len(rows)), (rows, cols)), shape=(len(modules),) * 2)
    _, component = connected_components(adjacency, directed=True, connection="strong")
    cycles = []
    for label in np.unique(component):
        members = [modules[i] for i in np.flatnonzero(component == label)]
        self_loop = len(members) == 1 and members[0] in graph.find_modules_directly_imported_by(
            members[0]
        )
        if len(members) > 1 or self_loop:
            cycles.append(members)
    return cycles


def describe_cycle(package: str, members: list[str]) -> str:
    """The import lines that tie a cycle's modules together."""
    graph = grimp.build_graph(package, cache_dir=None, exclude_type_checking_imports=False)
    lines = [" <-> ".join(members)]
    for importer in members:
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            if imported in members:
                for detail in graph.get_import_details(importer=importer, imported=imported):
                    lines.append(
                        f"    {importer}:{detail['line_number']}: {detail['line_contents']}"
                    )
    return "\n".join(lines)


def oversized_modules(root: Path, limit: int, allowed: Mapping[str, str]) -> dict[str, int]:
    """Python files under ``root`` longer than ``limit`` lines and not in ``allowed``.

    Returns
    -------
    dict
        Path relative to ``root`` (POSIX) -> number of lines.
    """
    sizes = {
        path.relative_to(root).as_posix(): len(path.read_text(encoding="utf-8").splitlines())
        for path in sorted(root.rglob("*.py"))
    }
    return {name: n for name, n in sizes.items() if n > limit and name not in allowed}


# ---- the package ---------------------------------------------------------------------------


def test_no_import_cycles_in_merkit() -> None:
    cycles = import_cycles("merkit")
    report = "\n".join(describe_cycle("merkit", members) for members in cycles)
    assert not cycles, f"import cycles in merkit (each group imports itself back):\n{report}"


def test_no_module_over_the_line_limit() -> None:
    over = oversized_modules(PACKAGE_DIR, MAX_LINES, LONG_MODULES_ALLOWED)
    listing = "\n".join(f"    {name}: {n} lines" for name, n in sorted(over.items()))
    assert not over, (
        f"modules over {MAX_LINES} lines (split them, or allowlist one that is a single "
        f"cohesive algorithm, saying which, in LONG_MODULES_ALLOWED):\n{listing}"
    )


def test_long_module_allowlist_is_current() -> None:
    missing = [name for name in LONG_MODULES_ALLOWED if not (PACKAGE_DIR / name).is_file()]
    assert not missing, f"LONG_MODULES_ALLOWED names modules that no longer exist: {missing}"


# ---- the checks themselves -------------------------------------------------------------------


def write_package(root: Path, name: str, modules: Mapping[str, str]) -> None:
    package = root / name
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    for module, source in modules.items():
        (package / f"{module}.py").write_text(textwrap.dedent(source))


@pytest.mark.parametrize(
    ("modules", "expected"),
    [
        # a -> b -> c -> a, with d importing a but outside the loop
        (
            {
                "a": "from {pkg} import b\n",
                "b": "from {pkg}.c import thing\n",
                "c": "thing = 1\ndef f():\n    from {pkg} import a\n",
                "d": "import {pkg}.a\n",
            },
            [["a", "b", "c"]],
        ),
        # a cycle closed only for the type checker is still a cycle
        (
            {
                "a": "from {pkg} import b\n",
                "b": (
                    "from typing import TYPE_CHECKING\n"
                    "if TYPE_CHECKING:\n"
                    "    from {pkg}.a import X\n"
                ),
            },
            [["a", "b"]],
        ),
        # one way only: no cycle
        ({"a": "from {pkg} import b\n", "b": "from {pkg} import c\n", "c": "x = 1\n"}, []),
    ],
    ids=["three-module-cycle", "type-checking-cycle", "acyclic"],
)
def test_import_cycles_finds_a_planted_cycle(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
    modules: dict[str, str],
    expected: list[list[str]],
) -> None:
    pkg = "cyclecheck_" + request.node.callspec.id.replace("-", "_")
    write_package(tmp_path, pkg, {k: v.format(pkg=pkg) for k, v in modules.items()})
    monkeypatch.syspath_prepend(str(tmp_path))
    found = import_cycles(pkg)
    assert found == [[f"{pkg}.{m}" for m in group] for group in expected]
    if found:
        report = describe_cycle(pkg, found[0])
        assert f"{pkg}.a:1: from {pkg} import b" in report


def test_oversized_modules_flags_long_files_unless_allowed(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "short.py").write_text("x = 1\n" * 10)
    (tmp_path / "long.py").write_text("x = 1\n" * 11)
    (tmp_path / "sub" / "algo.py").write_text("x = 1\n" * 50)
    assert oversized_modules(tmp_path, 10, {}) == {"long.py": 11, "sub/algo.py": 50}
    assert oversized_modules(tmp_path, 10, {"sub/algo.py": "one algorithm"}) == {"long.py": 11}
