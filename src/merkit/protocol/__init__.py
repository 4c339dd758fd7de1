"""The evaluation protocol: persisted folds, per-fold metrics, resumable cross-validation."""

from merkit.protocol.folds import Fold, ProtocolConfig, load_or_create_folds, make_folds
from merkit.protocol.metrics import fold_metrics, summarize
from merkit.protocol.runner import MethodResult, resolve_inputs, run_method

__all__ = [
    "Fold",
    "MethodResult",
    "ProtocolConfig",
    "fold_metrics",
    "load_or_create_folds",
    "make_folds",
    "resolve_inputs",
    "run_method",
    "summarize",
]
