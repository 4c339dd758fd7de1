"""The modules of models on disk import one way: schemas and layout below training and prediction.

``product.model_dir`` (layout, manifest, save/load) <- ``product.card`` <- ``product.export``
(train_final); ``audio.windows`` and ``product.prediction`` <- ``product.predict`` (Predictor,
load_model). Training and prediction never import each other, so either can change (or run in a
service) without the other. (No size rule: a module is as long as its one job needs.)
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

ATOMIC = "merkit.core.atomic"
MODEL_DIR = "merkit.product.model_dir"
CARD = "merkit.product.card"
WINDOWS = "merkit.audio.windows"
PREDICTION = "merkit.product.prediction"
VERSIONS = "merkit.core.versions"
EXPORT = "merkit.product.export"
PREDICT = "merkit.product.predict"

FORBIDDEN = {
    ATOMIC: {MODEL_DIR, CARD, WINDOWS, PREDICTION, EXPORT, PREDICT},
    MODEL_DIR: {CARD, WINDOWS, PREDICTION, EXPORT, PREDICT},
    CARD: {WINDOWS, PREDICTION, EXPORT, PREDICT},
    WINDOWS: {MODEL_DIR, CARD, PREDICTION, EXPORT, PREDICT},
    PREDICTION: {MODEL_DIR, CARD, WINDOWS, EXPORT, PREDICT},
    VERSIONS: {MODEL_DIR, CARD, WINDOWS, PREDICTION, EXPORT, PREDICT},
    EXPORT: {WINDOWS, PREDICTION, PREDICT},
    PREDICT: {EXPORT, CARD},
}


def _imports(module: str) -> set[str]:
    """Every ``merkit.…`` module imported anywhere in ``module`` (functions included)."""
    path = SRC / (module.replace(".", "/") + ".py")
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("merkit"):
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("merkit.")}
    return found


@pytest.mark.parametrize("module", sorted(FORBIDDEN))
def test_model_modules_import_one_way(module: str) -> None:
    assert not _imports(module) & FORBIDDEN[module]


def test_names_the_readme_documents_still_import() -> None:
    import merkit
    from merkit.product.export import TrainedModel, read_cv_results, save_model, train_final  # noqa: F401
    from merkit.product.predict import PredictionFailure, PredictionResult, Predictor  # noqa: F401

    assert merkit.load_model.__module__ == "merkit.product.predict"
    assert PredictionResult.model_json_schema()["title"] == "PredictionResult"
