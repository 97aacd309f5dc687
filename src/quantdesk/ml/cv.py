"""Purged walk-forward cross-validation with an embargo (López de Prado, AFML ch. 7).

Samples are described by their label spans ``[t0, t1]`` on a common time axis: integer bar
positions, or timestamps (datetime64), which are mapped to their rank among all the distinct
times. In a panel several samples share a timestamp; folds are cut between distinct timestamps,
so one timestamp is never split across train and test.

Every training set is cleaned against its test fold with one rule: drop each training sample
whose span ``[t0, t1]`` intersects ``[test_start, test_end + embargo]``, where ``test_start`` is
the fold's first time and ``test_end`` the last end of its labels. That is the purge (overlap with
the test labels) and the embargo (samples starting within ``embargo`` bars after the fold). In
walk-forward modes the training data lie before the test fold and only the purge bites; in
``"kfold"`` mode (train on both sides) the embargo matters too.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from typing import Literal

import numpy as np
import numpy.typing as npt

__all__ = ["PurgedWalkForward", "purge", "time_positions", "validation_tail"]

IntArray = npt.NDArray[np.int64]
Mode = Literal["expanding", "rolling", "kfold"]


def time_positions(t0: npt.ArrayLike, t1: npt.ArrayLike | None = None) -> tuple[IntArray, IntArray]:
    """Spans as integer positions: integers pass through, anything else (datetime64, ...)
    becomes its rank among the distinct values of ``t0`` and ``t1`` together."""
    a0 = np.asarray(t0)
    a1 = a0 if t1 is None else np.asarray(t1)
    if a0.ndim != 1 or a0.shape != a1.shape:
        raise ValueError("t0 and t1 must be one-dimensional and of the same length")
    if a0.dtype.kind in "iu" and a1.dtype.kind in "iu":
        p0, p1 = a0.astype(np.int64), a1.astype(np.int64)
    else:
        if a0.dtype.kind == "f" or a1.dtype.kind == "f":
            if np.isnan(a0.astype(float)).any() or np.isnan(a1.astype(float)).any():
                raise ValueError("t0/t1 contain NaN: drop unlabelled samples first")
            if np.any(a0 % 1 != 0) or np.any(a1 % 1 != 0):
                raise ValueError("float t0/t1 must hold whole bar positions")
            return time_positions(a0.astype(np.int64), a1.astype(np.int64))
        if a0.dtype.kind == "M" and (np.isnat(a0).any() or np.isnat(a1).any()):
            raise ValueError("t0/t1 contain NaT: drop unlabelled samples first")
        axis = np.unique(np.concatenate([a0, a1]))
        p0 = np.searchsorted(axis, a0).astype(np.int64)
        p1 = np.searchsorted(axis, a1).astype(np.int64)
    if np.any(p1 < p0):
        raise ValueError("every label must end at or after its start (t1 >= t0)")
    return p0, p1


def purge(
    train_idx: npt.ArrayLike,
    t0: IntArray,
    t1: IntArray,
    test_start: int,
    test_end: int,
    embargo: int = 0,
) -> IntArray:
    """The training samples left after dropping those whose span meets
    ``[test_start, test_end + embargo]``."""
    idx = np.asarray(train_idx, dtype=np.int64)
    hit = (t1[idx] >= test_start) & (t0[idx] <= test_end + embargo)
    return idx[~hit]


def validation_tail(
    train_idx: npt.ArrayLike, t0: IntArray, t1: IntArray, fraction: float
) -> tuple[IntArray, IntArray]:
    """Split a training set into (fit, validation): the validation part is the last
    ``fraction`` of its distinct times, and fit samples whose labels reach into it are purged
    (for early stopping without leaking the validation labels into the fit)."""
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    idx = np.asarray(train_idx, dtype=np.int64)
    times = np.unique(t0[idx])
    if len(times) < 2:
        raise ValueError("too few distinct times in the training set for a validation tail")
    cut = times[min(len(times) - 1, max(1, round(len(times) * (1 - fraction))))]
    val = idx[t0[idx] >= cut]
    fit = idx[(t0[idx] < cut) & (t1[idx] < cut)]
    if len(fit) == 0:
        raise ValueError("nothing left to fit on after purging the validation tail")
    return fit, val


class PurgedWalkForward:
    """Walk-forward splits with purge and embargo.

    The distinct times are cut into ``n_splits + 1`` blocks of equal length (any remainder goes
    to the first block); the last ``n_splits`` blocks are the test folds, in time order, covering
    the tail. ``mode``:

    * ``"expanding"``: train on everything before the test fold;
    * ``"rolling"``: train on the ``train_size`` distinct times before it (default: the length
      of the first block);
    * ``"kfold"``: purged k-fold: the whole axis is cut into ``n_splits`` test folds and the
      training data are all other samples, before and after.

    ``embargo``: bars (int >= 0) or a fraction (float in [0, 1)) of the time axis length, rounded
    up. ``min_train``: a fold with fewer training samples left after the purge raises.
    """

    def __init__(
        self,
        n_splits: int = 5,
        mode: Mode = "expanding",
        train_size: int | None = None,
        embargo: float = 0.01,
        min_train: int = 1,
    ) -> None:
        if mode not in ("expanding", "rolling", "kfold"):
            raise ValueError(f"mode must be 'expanding', 'rolling' or 'kfold', got {mode!r}")
        if int(n_splits) != n_splits or n_splits < (2 if mode == "kfold" else 1):
            raise ValueError(f"n_splits must be an integer >= 1 (2 for kfold), got {n_splits}")
        if train_size is not None and (mode != "rolling" or train_size < 1):
            raise ValueError("train_size is a positive number of times, for mode='rolling' only")
        if embargo < 0 or (isinstance(embargo, float) and embargo >= 1):
            raise ValueError(f"embargo must be an int >= 0 or a fraction in [0, 1), got {embargo}")
        if min_train < 1:
            raise ValueError(f"min_train must be >= 1, got {min_train}")
        self.n_splits = int(n_splits)
        self.mode: Mode = mode
        self.train_size = train_size
        self.embargo = embargo
        self.min_train = min_train

    def __repr__(self) -> str:
        return (
            f"PurgedWalkForward(n_splits={self.n_splits}, mode={self.mode!r}, "
            f"train_size={self.train_size}, embargo={self.embargo}, min_train={self.min_train})"
        )

    def get_n_splits(self) -> int:
        return self.n_splits

    def embargo_bars(self, t0: IntArray, t1: IntArray) -> int:
        """The embargo in bars of this axis (a fraction applies to the axis length)."""
        if isinstance(self.embargo, float):
            return math.ceil(self.embargo * int(t1.max() - t0.min() + 1))
        return int(self.embargo)

    def split(
        self, t0: npt.ArrayLike, t1: npt.ArrayLike | None = None
    ) -> Iterator[tuple[IntArray, IntArray]]:
        """Yield ``(train_idx, test_idx)`` row positions per fold, in time order.

        ``t0`` / ``t1``: each sample's label start and end on the common time axis (``t1``
        defaults to ``t0``: labels known at once). Rows need not be sorted.
        """
        p0, p1 = time_positions(t0, t1)
        times = np.unique(p0)
        n_blocks = self.n_splits + (0 if self.mode == "kfold" else 1)
        if len(times) < n_blocks:
            raise ValueError(
                f"too few samples for {self.n_splits} folds: {len(times)} distinct times, "
                f"need at least {n_blocks}"
            )
        embargo = self.embargo_bars(p0, p1) if len(p0) else 0
        order = np.argsort(p0, kind="stable")
        sorted_t0 = p0[order]
        for k, (first, last) in enumerate(self._test_blocks(len(times))):
            start, stop = times[first], times[last - 1]
            lo = int(np.searchsorted(sorted_t0, start, side="left"))
            hi = int(np.searchsorted(sorted_t0, stop, side="right"))
            test = np.sort(order[lo:hi])
            candidates = self._candidates(order, sorted_t0, times, first, lo, hi)
            train = purge(candidates, p0, p1, int(start), int(p1[test].max()), embargo)
            if len(train) < self.min_train:
                raise ValueError(
                    f"fold {k}: {len(train)} training samples left after purge and embargo "
                    f"(min_train={self.min_train}); use fewer folds or shorter labels"
                )
            yield np.sort(train), test

    def _test_blocks(self, n_times: int) -> list[tuple[int, int]]:
        if self.mode == "kfold":
            edges = np.linspace(0, n_times, self.n_splits + 1).round().astype(int)
            return [(int(a), int(b)) for a, b in itertools.pairwise(edges)]
        size = n_times // (self.n_splits + 1)
        first = n_times - self.n_splits * size
        return [(first + k * size, first + (k + 1) * size) for k in range(self.n_splits)]

    def _candidates(
        self,
        order: IntArray,
        sorted_t0: IntArray,
        times: IntArray,
        first: int,
        lo: int,
        hi: int,
    ) -> IntArray:
        """Training candidates (before purge): rows by sorted start time outside the test."""
        if self.mode == "kfold":
            return np.concatenate([order[:lo], order[hi:]])
        if self.mode == "expanding":
            return order[:lo]
        size = self.train_size or len(times) - self.n_splits * (len(times) // (self.n_splits + 1))
        begin = times[max(0, first - size)]
        return order[np.searchsorted(sorted_t0, begin, side="left") : lo]
