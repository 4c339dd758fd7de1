"""Weights to start training from (``TorchClassifier(init_state=...)``): read, check, load."""

from __future__ import annotations

from collections.abc import Mapping
from os import PathLike
from pathlib import Path
from typing import Any

import torch
from torch import nn

from merkit.core.errors import ConfigError

STATE_FORMAT: str = "merkit.TorchClassifier"
"""The ``format`` tag of a file written by ``TorchClassifier.save`` (its weights are accepted)."""

InitState = Mapping[str, torch.Tensor] | str | PathLike[str]


def read_init_state(source: InitState) -> Mapping[str, torch.Tensor]:
    """Weights to start from: a state dict, or a file of one (or of a saved TorchClassifier).

    Raises
    ------
    ConfigError
        A missing or unreadable file, or one that holds no state dict.
    """
    if isinstance(source, Mapping):
        state: Any = source
    else:
        path = Path(source)
        if not path.is_file():
            raise ConfigError(f"init_state file not found: {path}")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # unpickling errors come in many types
            raise ConfigError(f"cannot read init_state file {path}: {error}") from None
        if isinstance(state, Mapping) and state.get("format") == STATE_FORMAT:
            state = state["state_dict"]
    if not isinstance(state, Mapping) or not all(
        isinstance(v, torch.Tensor) for v in state.values()
    ):
        raise ConfigError("init_state must be a state dict (parameter name -> tensor) or its file")
    return state


def load_init_state(network: nn.Module, source: InitState) -> None:
    """Load ``source`` into ``network`` exactly (every key, every shape).

    Raises
    ------
    ConfigError
        Naming the missing and unexpected keys and the mismatched shapes.
    """
    state = read_init_state(source)
    own = network.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [
        f"{key}: {tuple(state[key].shape)} vs model {tuple(own[key].shape)}"
        for key in sorted(set(own) & set(state))
        if tuple(state[key].shape) != tuple(own[key].shape)
    ]
    if missing or unexpected or shapes:
        problems = []
        if missing:
            problems.append(f"missing keys {missing[:10]}")
        if unexpected:
            problems.append(f"unexpected keys {unexpected[:10]}")
        if shapes:
            problems.append(f"other shapes {shapes[:10]}")
        raise ConfigError(
            f"init_state does not fit {type(network).__name__}: " + "; ".join(problems)
        )
    network.load_state_dict(state, strict=True)
