"""The evaluation protocol: persisted folds, per-fold work and records, resumable runs."""

from merkit.protocol.executor import (
    Executor,
    ProcessExecutor,
    SerialExecutor,
    TaskNeeds,
    TasksFailed,
)
from merkit.protocol.folds import Fold, ProtocolConfig, load_or_create_folds, make_folds
from merkit.protocol.metrics import fold_metrics, summarize
from merkit.protocol.records import FoldRecord, read_fold, write_fold
from merkit.protocol.results import RunResults, load_results
from merkit.protocol.runner import MethodResult, fit_fold, resolve_inputs, run_method

__all__ = [
    "Executor",
    "Fold",
    "FoldRecord",
    "MethodResult",
    "ProcessExecutor",
    "ProtocolConfig",
    "RunResults",
    "SerialExecutor",
    "TaskNeeds",
    "TasksFailed",
    "fit_fold",
    "fold_metrics",
    "load_or_create_folds",
    "load_results",
    "make_folds",
    "read_fold",
    "resolve_inputs",
    "run_method",
    "summarize",
    "write_fold",
]
