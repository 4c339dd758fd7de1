"""The core install: predict, serve and train of the shipped models need no optional extra, and a
command that needs a missing extra says which in one line.

A fresh venv per test would take minutes; instead a child process refuses to import every
library of the extras (as if they were not installed) and runs the core paths.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from merkit.core.errors import MissingExtraError
from merkit.core.versions import EXTRAS, require_extra, require_extras

SRC = Path(__file__).resolve().parents[1] / "src" / "merkit"


def test_require_extra_imports_or_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import json as stdlib_json

    monkeypatch.setitem(EXTRAS, "json", "research")
    assert require_extra("json", needed_by="x") is stdlib_json
    monkeypatch.setitem(EXTRAS, "merkit_absent_library", "research")
    with pytest.raises(MissingExtraError) as caught:
        require_extra("merkit_absent_library.sub", needed_by="merkit tune")
    assert str(caught.value) == (
        "merkit tune needs the research extra: pip install 'merkit[research]'"
    )
    with pytest.raises(MissingExtraError, match=r"^merkit report needs the research extra"):
        require_extras(["json", "merkit_absent_library"], needed_by="merkit report")


def _top_level_imports(tree: ast.Module) -> list[tuple[str, int]]:
    """Imports that run when the module is imported: module level, in try/if/with blocks, but
    not under ``if TYPE_CHECKING:`` and not inside functions or classes' methods."""
    found: list[tuple[str, int]] = []

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.Import):
                found.extend((alias.name, node.lineno) for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.append((node.module, node.lineno))
            elif isinstance(node, ast.If):
                test = ast.unparse(node.test)
                if "TYPE_CHECKING" not in test:
                    visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)
                for handler in node.handlers:
                    visit(handler.body)
                visit(node.orelse)
                visit(node.finalbody)
            elif isinstance(node, ast.With | ast.ClassDef):
                visit(node.body)

    visit(tree.body)
    return found


def test_no_module_imports_an_optional_library_when_imported() -> None:
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        for module, line in _top_level_imports(ast.parse(path.read_text(), str(path))):
            if module.split(".")[0] in EXTRAS:
                offenders.append(f"{path.relative_to(SRC)}:{line} imports {module}")
    assert offenders == []


def test_the_dependencies_are_ranges_and_the_research_parts_extras() -> None:
    import tomllib

    project = tomllib.loads((SRC.parents[1] / "pyproject.toml").read_text())["project"]
    core = project["dependencies"]
    assert not [
        d for d in core if "==" in d
    ]  # ranges: an application installs merkit beside its own
    names = {d.split(">")[0].split("<")[0].split("=")[0].split("[")[0].strip() for d in core}
    assert names.isdisjoint(
        {"optuna", "statsmodels", "scikit-posthocs", "audiomentations", "imbalanced-learn", "h5py"}
    )
    assert names.isdisjoint({"ray", "openl3", "matplotlib"})
    extras = project["optional-dependencies"]
    assert {"research", "ray", "openl3", "docs", "test"} <= set(extras)
    assert "merkit[research,ray]" in extras["test"]
    constraints = (SRC.parents[1] / "constraints.txt").read_text().splitlines()
    assert "torch==2.13.0+cpu" in constraints  # `make` installs the CPU build


CHILD = textwrap.dedent(
    """
    import importlib.abc, json, sys
    BLOCKED = set(sys.argv[1].split(","))
    imported = []

    class NotInstalled(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name.split(".")[0] in BLOCKED:
                imported.append(name)
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, NotInstalled())

    from typer.testing import CliRunner
    import merkit
    from merkit.cli import app

    out = {}
    runner = CliRunner()
    def run(*args):
        result = runner.invoke(app, list(args))
        return {"code": result.exit_code, "output": result.output}

    out["help"] = run("predict", "--help")
    from merkit.methods import resolve_method
    for name in ("svm-own", "fusion"):  # the shipped models' recipes, estimators built
        resolve_method(name, {})
    out["predict"] = run("predict", sys.argv[2], "--model", "fast", "--format", "json", "--quiet")
    out["benchmark"] = run("benchmark", "--quick", "--quiet", "--out", sys.argv[3])
    try:
        resolve_method("cnn+deepsmote", {})
    except merkit.MerkitError as exc:
        out["deepsmote"] = str(exc)

    from fastapi.testclient import TestClient
    from merkit.serve.app import create_app
    from merkit.serve.settings import ServeSettings
    with TestClient(create_app(ServeSettings(model="fast"))) as client:
        with open(sys.argv[2], "rb") as handle:
            response = client.post("/v1/predict", files={"file": ("a.wav", handle, "audio/wav")})
        out["serve"] = {"code": response.status_code, "body": response.json()}
    out["blocked_imports"] = imported
    print("RESULT" + json.dumps(out))
    """
)


@pytest.mark.slow
def test_predict_and_serve_work_without_the_extras(tmp_path: Path) -> None:
    from conftest import write_tone

    clip = write_tone(tmp_path / "clip.wav", 440.0, seconds=3.0)
    blocked = ",".join(sorted(EXTRAS))
    child = subprocess.run(
        [sys.executable, "-c", CHILD, blocked, str(clip), str(tmp_path / "run")],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,  # nothing is imported from the current folder
    )
    assert child.returncode == 0, child.stderr[-3000:]
    line = next(x for x in child.stdout.splitlines() if x.startswith("RESULT"))
    out = json.loads(line.removeprefix("RESULT"))
    assert out["help"]["code"] == 0 and "--model" in out["help"]["output"]
    assert out["predict"]["code"] == 0, out["predict"]["output"]
    answer = json.loads(out["predict"]["output"][out["predict"]["output"].index("[") :])
    assert answer[0]["quadrant"] in ("Q1", "Q2", "Q3", "Q4")
    assert out["serve"]["code"] == 200 and out["serve"]["body"]["quadrant"] == answer[0]["quadrant"]
    # research commands and methods: one line naming the extra, before any work
    assert out["benchmark"]["code"] == 1
    assert out["benchmark"]["output"].strip() == (
        "error: merkit benchmark needs the research extra: pip install 'merkit[research]'"
    )
    assert not (tmp_path / "run").exists()
    assert (
        out["deepsmote"] == "cnn+deepsmote needs the research extra: pip install 'merkit[research]'"
    )
