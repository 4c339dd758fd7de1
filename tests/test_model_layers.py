"""The modules of models on disk import one way: schemas and layout below training and prediction.

``model_dir`` (layout, manifest, save/load) <- ``model_card`` <- ``export`` (train_final);
``windows`` and ``prediction`` <- ``predict`` (Predictor, load_model). Training and prediction
never import each other, so either can change (or run in a service) without the other.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "merkit"

FORBIDDEN = {
    "atomic_dir": {"model_dir", "model_card", "windows", "prediction", "export", "predict"},
    "model_dir": {"model_card", "windows", "prediction", "export", "predict"},
    "model_card": {"windows", "prediction", "export", "predict"},
    "windows": {"model_dir", "model_card", "prediction", "export", "predict"},
    "prediction": {"model_dir", "model_card", "windows", "export", "predict"},
    "versions": {"model_dir", "model_card", "windows", "prediction", "export", "predict"},
    "export": {"windows", "prediction", "predict"},
    "predict": {"export", "model_card"},
}


def _imports(module: str) -> set[str]:
    """Every ``merkit.X`` module imported anywhere in ``module`` (functions included)."""
    tree = ast.parse((SRC / f"{module}.py").read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "merkit":
                found |= {alias.name for alias in node.names}
            elif node.module.startswith("merkit."):
                found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("merkit.")}
    return found


@pytest.mark.parametrize("module", sorted(FORBIDDEN))
def test_model_modules_import_one_way(module: str) -> None:
    assert not _imports(module) & FORBIDDEN[module]


@pytest.mark.parametrize("module", sorted(FORBIDDEN))
def test_model_modules_are_small(module: str) -> None:
    assert len((SRC / f"{module}.py").read_text().splitlines()) <= 530


def test_names_the_readme_documents_still_import() -> None:
    import merkit
    from merkit.product.export import TrainedModel, read_cv_results, save_model, train_final  # noqa: F401
    from merkit.product.predict import PredictionFailure, PredictionResult, Predictor  # noqa: F401

    assert merkit.load_model.__module__ == "merkit.product.predict"
    assert PredictionResult.model_json_schema()["title"] == "PredictionResult"
