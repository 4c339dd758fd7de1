"""The model card of a model directory: what the model is for and what it is not.

The prose lives in the jinja2 template ``merkit/templates/model_card.md.j2`` (package data); every
number in it comes from the :class:`~merkit.product.model_dir.ModelManifest`: the training data, the
method's cross-validated scores (read from a benchmark ``results.csv``, never estimated here),
intended use and limits.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from merkit.product.model_dir import ModelManifest

TEMPLATE = "model_card.md.j2"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f} %"


def _g(value: float) -> str:
    return f"{value:g}"


def _tojson_sorted(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


@cache
def _environment() -> Any:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("merkit", "templates"),
        autoescape=False,  # Markdown, not HTML
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters.update(pct=_pct, g=_g, tojson_sorted=_tojson_sorted)
    return env


def model_card(manifest: ModelManifest) -> str:
    """The Markdown model card of a manifest (every number comes from the manifest)."""
    template = _environment().get_template(TEMPLATE)
    return template.render(m=manifest, t=manifest.training, cv=manifest.cv)


__all__ = ["model_card"]
