"""Schemas of the estimator files a model directory holds (re-exported by
:mod:`merkit.product.model_dir`, whose manifest names them)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from merkit.core.moved import current_path


class EstimatorFile(BaseModel):
    """Where the fitted estimator is stored and how to read it back."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    format: Literal["joblib", "torch"]
    file: str
    class_path: str = Field(description="'module:QualName' of the estimator class")
    sha256: str

    @field_validator("class_path")
    @classmethod
    def _current_class_path(cls, class_path: str) -> str:
        return current_path(class_path)  # an old module path (before the package move) too


class Companions(BaseModel):
    """Arousal/valence models and familiarity beside the estimator
    (:mod:`merkit.estimators.axes`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    axes: EstimatorFile
    familiarity: EstimatorFile | None = None
    rule: Literal["joint", "quadrant", "axes", "sides"] = "joint"
    n_songs: int | None = None
    recipe: str = ""
    familiarity_recipe: str = ""
    cv: dict[str, float | str] | None = None


__all__ = ["Companions", "EstimatorFile"]
