"""Settings of ``merkit serve``: which model, and the caps that keep one request bounded.

Each setting can come from an environment variable (``MERKIT_SERVE_<NAME>``), which is also how
the command line hands its options to uvicorn's worker processes.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from merkit.core.errors import ConfigError

ENV_PREFIX = "MERKIT_SERVE_"


class ServeSettings(BaseModel):
    """What one ``merkit serve`` worker needs to know.

    Attributes
    ----------
    model : Path, optional
        Model directory (``None``: the model shipped with merkit).
    max_upload_mb : float
        Largest request body accepted, in MB (10⁶ bytes); larger uploads get 413.
    max_duration_s : float
        Longest audio accepted, in seconds; longer audio gets 413.
    max_concurrent : int
        Predictions one worker runs at once (others wait); bounds CPU and memory per worker.
    hop_s : float, optional
        Seconds between a long track's window starts (``None``: the model's); as
        ``merkit predict --hop``.
    exact_windows : bool, optional
        ``False``: each second of a long track analysed once (``merkit predict --one-pass``);
        ``None``: the predictor's default (every window on its own, as training).
    crnn_precision : str, optional
        Arithmetic of the CRNN taggers (``merkit predict --crnn-precision``; ``None``: as the
        model stored it).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: Path | None = None
    max_upload_mb: float = Field(50.0, gt=0, allow_inf_nan=False)
    max_duration_s: float = Field(1200.0, gt=0, allow_inf_nan=False)
    max_concurrent: int = Field(2, ge=1)
    # the prediction options of ``merkit predict``: 1.0 is merkit.product.predict.MIN_HOP_S (not
    # imported: these settings load before torch); the CLI checks them with predict's own words
    hop_s: float | None = Field(None, ge=1.0, allow_inf_nan=False)
    exact_windows: bool | None = None
    crnn_precision: Literal["float32", "bf16", "winograd"] | None = None

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1_000_000)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ServeSettings:
        """Settings from ``MERKIT_SERVE_*`` variables (unset ones keep their defaults).

        Raises
        ------
        ConfigError
            A variable holds a value the setting cannot take; the message names the variable.
        """
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for name in cls.model_fields:
            raw = environ.get(ENV_PREFIX + name.upper())
            if raw is not None and raw != "":
                values[name] = raw
        try:
            return cls(**values)
        except ValidationError as exc:
            first = exc.errors()[0]
            name = str(first["loc"][0]) if first["loc"] else "?"
            raise ConfigError(
                f"{ENV_PREFIX}{name.upper()}={values.get(name)!r}: {first['msg']}"
            ) from None

    def to_env(self) -> dict[str, str]:
        """The ``MERKIT_SERVE_*`` variables that reproduce these settings."""
        return {
            ENV_PREFIX + name.upper(): "" if value is None else str(value)
            for name, value in self.model_dump().items()
        }


__all__ = ["ENV_PREFIX", "ServeSettings"]
