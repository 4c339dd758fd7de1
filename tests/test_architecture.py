"""The package's shape: modules import one way (no cycles).

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


# ---- the package ---------------------------------------------------------------------------


def test_no_import_cycles_in_merkit() -> None:
    cycles = import_cycles("merkit")
    report = "\n".join(describe_cycle("merkit", members) for members in cycles)
    assert not cycles, f"import cycles in merkit (each group imports itself back):\n{report}"


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
