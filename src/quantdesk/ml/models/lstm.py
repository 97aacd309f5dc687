"""A small LSTM over windows of feature rows (PyTorch, CPU), as a classifier or a regressor.

Sequences: the input for row ``i`` is the ``window`` rows of the SAME symbol ending at ``i``, in
time order; rows with a shorter history are zero-padded at the front (zero = the training mean
after standardisation). Sequences never cross symbols. The symbol of each row comes from, in
order of precedence: the ``groups`` argument (one key per row; rows of a group must already be
in time order), a ``symbol`` level of the DataFrame's MultiIndex (time order from the other
level, e.g. ``(timestamp, symbol)``), or else the whole ``X`` is one series in row order.

Predicting needs each row's history: predict on the full feature frame and take the rows you
want, rather than on a slice whose first rows lose their context.

Features are standardised with the training mean/std (saved with the model; NaN -> 0 after
that); a regressor's target is standardised too. Training is deterministic: fixed seed,
``torch.use_deterministic_algorithms(True)`` and ``n_threads`` threads while fitting and
predicting (the global RNG and settings are restored afterwards). Early stopping watches the
``eval_set`` if given, else the last ``validation_fraction`` of the training times.
torch is imported when a model is built, so the package imports without it.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any, Self

import numpy as np
import numpy.typing as npt
import pandas as pd

from quantdesk.ml.models.base import (
    EvalSet,
    Kind,
    MissingDependencyError,
    Model,
    binary_target,
    check_lengths,
)

__all__ = ["LSTMModel", "sequence_index", "torch_module"]

WEIGHTS_FILE = "weights.pt"
SYMBOL_LEVEL = "symbol"

DEFAULTS: dict[str, Any] = {
    "window": 16,
    "hidden_size": 16,
    "num_layers": 1,
    "dropout": 0.0,
    "learning_rate": 0.01,
    "weight_decay": 0.0,
    "batch_size": 256,
    "max_epochs": 30,
    "patience": 4,
    "validation_fraction": 0.2,
    "n_threads": 1,
    "seed": 0,
}


def torch_module() -> ModuleType:
    """``import torch``, or a :class:`MissingDependencyError` naming the ``lstm`` extra."""
    try:
        import torch
    except ImportError as exc:
        raise MissingDependencyError("torch", "lstm") from exc
    return torch


def _group_and_time(X: Any, groups: npt.ArrayLike | None) -> tuple[np.ndarray, np.ndarray]:
    """Per row: an integer group code and an integer time rank within the whole frame."""
    n = len(X)
    if groups is not None:
        codes = pd.factorize(np.asarray(groups))[0]
        if len(codes) != n:
            raise ValueError(f"groups has {len(codes)} entries for {n} rows")
        return codes, np.arange(n)
    index = X.index if isinstance(X, pd.DataFrame) else None
    if isinstance(index, pd.MultiIndex) and SYMBOL_LEVEL in index.names:
        codes = pd.factorize(index.get_level_values(SYMBOL_LEVEL))[0]
        time_level = next(name for name in index.names if name != SYMBOL_LEVEL)
        times = pd.factorize(index.get_level_values(time_level), sort=True)[0]
        return codes, times
    if isinstance(index, pd.MultiIndex):
        raise ValueError("a MultiIndex needs a 'symbol' level (or pass groups=)")
    return np.zeros(n, dtype=np.int64), np.arange(n)


def sequence_index(codes: np.ndarray, times: np.ndarray, window: int) -> npt.NDArray[np.int64]:
    """``(n, window)`` row numbers of each row's window (same group, time order, oldest first);
    ``n`` (one past the last row) marks padding before a group's first row."""
    n = len(codes)
    order = np.lexsort((np.arange(n), times, codes))
    g = codes[order]
    first = np.r_[True, g[1:] != g[:-1]] if n else np.zeros(0, dtype=bool)
    group_start = np.maximum.accumulate(np.where(first, np.arange(n), 0))
    pos = np.arange(n)[:, None] + np.arange(1 - window, 1)[None, :]
    ok = pos >= group_start[:, None]
    in_sorted = np.where(ok, order[np.clip(pos, 0, None)], n)
    out = np.empty_like(in_sorted)
    out[order] = in_sorted
    return out.astype(np.int64)


class LSTMModel(Model):
    """LSTM -> last hidden state -> linear head. Params: see ``DEFAULTS``."""

    name = "lstm"
    needs_history = True

    def __init__(self, kind: Kind = "classifier", **params: Any) -> None:
        unknown = set(params) - set(DEFAULTS)
        if unknown:
            raise ValueError(f"unknown LSTM params {sorted(unknown)}; known: {sorted(DEFAULTS)}")
        self._torch = torch_module()
        super().__init__(kind, {**DEFAULTS, **params})
        if int(self.params["window"]) < 1:
            raise ValueError("window must be >= 1")
        self.net: Any = None
        self.mean: npt.NDArray[np.float64] = np.zeros(0)
        self.std: npt.NDArray[np.float64] = np.ones(0)
        self.y_mean, self.y_std = 0.0, 1.0
        self.epochs_run = 0

    @contextmanager
    def _torch_settings(self) -> Iterator[Any]:
        """Seeded, deterministic, fixed threads; the caller's RNG and settings come back after."""
        torch = self._torch
        deterministic = torch.are_deterministic_algorithms_enabled()
        threads = torch.get_num_threads()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(self.params["seed"]))
            torch.use_deterministic_algorithms(True)
            torch.set_num_threads(int(self.params["n_threads"]))
            try:
                yield torch
            finally:
                torch.use_deterministic_algorithms(deterministic)
                torch.set_num_threads(threads)

    def _build(self, n_features: int) -> Any:
        nn = self._torch.nn
        p = self.params
        layers = int(p["num_layers"])
        return nn.ModuleDict(
            {
                "lstm": nn.LSTM(
                    n_features,
                    int(p["hidden_size"]),
                    num_layers=layers,
                    dropout=float(p["dropout"]) if layers > 1 else 0.0,
                    batch_first=True,
                ),
                "head": nn.Linear(int(p["hidden_size"]), 1),
            }
        )

    def _forward(self, x: Any) -> Any:
        out, _ = self.net["lstm"](x)
        return self.net["head"](out[:, -1, :]).squeeze(-1)

    def _standardise_with(self, matrix: npt.NDArray[np.float64]) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: mean 0, std 1
            mean = np.nanmean(matrix, axis=0)
            std = np.nanstd(matrix, axis=0)
        self.mean = np.nan_to_num(mean)
        self.std = np.where(np.nan_to_num(std) > 0, np.nan_to_num(std), 1.0)

    def _inputs(self, X: Any, groups: npt.ArrayLike | None) -> tuple[Any, Any]:
        """The padded standardised matrix (float32, zero row last) and the window index."""
        matrix = self._columns(X, fitting=False)
        z = np.nan_to_num((matrix - self.mean) / self.std).astype(np.float32)
        padded = np.vstack([z, np.zeros((1, z.shape[1]), dtype=np.float32)])
        codes, times = _group_and_time(X, groups)
        return padded, sequence_index(codes, times, int(self.params["window"]))

    def _target(self, y: npt.ArrayLike) -> npt.NDArray[np.float64]:
        if self.kind == "classifier":
            return binary_target(y)
        arr = np.asarray(y, dtype=np.float64)
        if not np.isfinite(arr).all():
            raise ValueError("y must be finite: drop unlabelled samples before fitting")
        return arr

    def _loss(self, x: Any, y: Any, w: Any) -> Any:
        functional = self._torch.nn.functional
        out = self._forward(x)
        if self.kind == "classifier":
            per_row = functional.binary_cross_entropy_with_logits(out, y, reduction="none")
        else:
            per_row = (out - y) ** 2
        return (per_row * w).sum() / w.sum().clamp_min(1e-12)

    def fit(
        self,
        X: Any,
        y: npt.ArrayLike,
        sample_weight: npt.ArrayLike | None = None,
        eval_set: EvalSet | None = None,
        *,
        groups: npt.ArrayLike | None = None,
    ) -> Self:
        check_lengths(X, y, sample_weight)
        target = self._target(y)
        weight = np.ones(len(target)) if sample_weight is None else np.asarray(sample_weight, float)
        _, times = _group_and_time(X, groups)
        if eval_set is None:
            fit_rows, val_rows = _tail_split(times, float(self.params["validation_fraction"]))
        else:
            fit_rows, val_rows = np.arange(len(target)), np.zeros(0, dtype=np.int64)
        # Standardise with the statistics of the rows actually fitted on.
        self._standardise_with(self._columns(X, fitting=True)[fit_rows])
        padded, seq = self._inputs(X, groups)
        if self.kind == "regressor":
            self.y_mean = float(target[fit_rows].mean())
            self.y_std = float(target[fit_rows].std()) or 1.0
            target = (target - self.y_mean) / self.y_std
        train = (padded, seq[fit_rows], target[fit_rows], weight[fit_rows])
        if eval_set is not None:
            Xv, yv, *rest = eval_set
            check_lengths(Xv, yv, rest[0] if rest else None)
            vpad, vseq = self._inputs(Xv, None)
            vy = self._target(yv)
            if self.kind == "regressor":
                vy = (vy - self.y_mean) / self.y_std
            val = (vpad, vseq, vy, np.asarray(rest[0], float) if rest else np.ones(len(vy)))
        else:
            val = (padded, seq[val_rows], target[val_rows], weight[val_rows])
        with self._torch_settings():
            self._train(train, val, n_features=padded.shape[1])
        return self

    def _train(self, train: tuple[Any, ...], val: tuple[Any, ...], n_features: int) -> None:
        torch = self._torch
        p = self.params
        self.net = self._build(n_features)
        optimiser = torch.optim.Adam(
            self.net.parameters(), lr=float(p["learning_rate"]), weight_decay=p["weight_decay"]
        )
        generator = torch.Generator().manual_seed(int(p["seed"]))
        padded, seq, y, w = train
        batch = int(p["batch_size"])
        best, best_state, stale = np.inf, None, 0
        self.epochs_run = 0
        for _ in range(int(p["max_epochs"])):
            self.net.train()
            perm = torch.randperm(len(y), generator=generator).numpy()
            for start in range(0, len(y), batch):
                rows = perm[start : start + batch]
                loss = self._loss(*_tensors(torch, padded, seq[rows], y[rows], w[rows]))
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
            self.epochs_run += 1
            if len(val[1]) == 0:
                continue
            score = self._evaluate(val)
            if score < best - 1e-6:
                best, stale = score, 0
                best_state = {k: v.detach().clone() for k, v in self.net.state_dict().items()}
            else:
                stale += 1
                if stale >= int(p["patience"]):
                    break
        if best_state is not None:
            self.net.load_state_dict(best_state)
        self.net.eval()

    def _evaluate(self, data: tuple[Any, ...]) -> float:
        torch = self._torch
        padded, seq, y, w = data
        self.net.eval()
        total, weight = 0.0, 0.0
        with torch.no_grad():
            for start in range(0, len(y), 8192):
                part = slice(start, start + 8192)
                x, yb, wb = _tensors(torch, padded, seq[part], y[part], w[part])
                total += float(self._loss(x, yb, wb)) * float(wb.sum())
                weight += float(wb.sum())
        return total / max(weight, 1e-12)

    def predict(self, X: Any, *, groups: npt.ArrayLike | None = None) -> npt.NDArray[np.float64]:
        if self.net is None:
            raise ValueError("the model has not been fitted")
        padded, seq = self._inputs(X, groups)
        out = np.empty(len(seq))
        with self._torch_settings() as torch, torch.no_grad():
            self.net.eval()
            for start in range(0, len(seq), 8192):
                x = torch.from_numpy(padded[seq[start : start + 8192]])
                out[start : start + 8192] = self._forward(x).double().numpy()
        if self.kind == "classifier":
            return np.asarray(1.0 / (1.0 + np.exp(-out)), dtype=np.float64)
        return np.asarray(out * self.y_std + self.y_mean, dtype=np.float64)

    def _save_state(self, directory: Path) -> dict[str, Any]:
        self._torch.save(self.net.state_dict(), directory / WEIGHTS_FILE)
        return {
            "weights": WEIGHTS_FILE,
            "mean": self.mean.tolist(),
            "std": self.std.tolist(),
            "y_mean": self.y_mean,
            "y_std": self.y_std,
            "epochs_run": self.epochs_run,
        }

    def _load_state(self, directory: Path, meta: dict[str, Any]) -> None:
        self.mean = np.asarray(meta["mean"], dtype=np.float64)
        self.std = np.asarray(meta["std"], dtype=np.float64)
        self.y_mean, self.y_std = float(meta["y_mean"]), float(meta["y_std"])
        self.epochs_run = int(meta["epochs_run"])
        with self._torch_settings() as torch:
            self.net = self._build(len(self.feature_names))
            state = torch.load(directory / meta["weights"], weights_only=True)
            self.net.load_state_dict(state)
            self.net.eval()


def _tail_split(times: np.ndarray, fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Rows before / from the cut at the last ``fraction`` of the distinct times."""
    if not 0 <= fraction < 1:
        raise ValueError(f"validation_fraction must be in [0, 1), got {fraction}")
    distinct = np.unique(times)
    n_val = round(len(distinct) * fraction)
    if n_val == 0 or n_val >= len(distinct):
        return np.arange(len(times)), np.zeros(0, dtype=np.int64)
    cut = distinct[len(distinct) - n_val]
    return np.flatnonzero(times < cut), np.flatnonzero(times >= cut)


def _tensors(torch: Any, padded: Any, seq: Any, y: Any, w: Any) -> tuple[Any, Any, Any]:
    return (
        torch.from_numpy(padded[seq]),
        torch.from_numpy(np.asarray(y, dtype=np.float32)),
        torch.from_numpy(np.asarray(w, dtype=np.float32)),
    )
