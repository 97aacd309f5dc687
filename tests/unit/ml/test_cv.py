"""Purged walk-forward CV: the invariants that keep test labels out of training, checked on
random panels (several samples per timestamp, unsorted rows, labels of random length)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from quantdesk.ml.cv import PurgedWalkForward, purge, time_positions, validation_tail


@st.composite
def panels(draw):
    """Label spans of a panel: per row a start time (shared by several rows) and a length."""
    n_times = draw(st.integers(6, 60))
    n = draw(st.integers(n_times, 3 * n_times))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    t0 = np.concatenate([np.arange(n_times), rng.integers(0, n_times, n - n_times)])
    rng.shuffle(t0)
    t1 = t0 + rng.integers(0, draw(st.integers(1, 6)), n)
    return t0.astype(np.int64), t1.astype(np.int64)


@st.composite
def splitters(draw, modes=("expanding", "rolling", "kfold")):
    mode = draw(st.sampled_from(modes))
    n_splits = draw(st.integers(2, 5))
    embargo = draw(st.one_of(st.integers(0, 4), st.floats(0.0, 0.1)))
    train_size = draw(st.one_of(st.none(), st.integers(1, 20))) if mode == "rolling" else None
    return PurgedWalkForward(n_splits, mode, train_size=train_size, embargo=embargo)


def splits_or_skip(cv, t0, t1):
    try:
        return list(cv.split(t0, t1))
    except ValueError as exc:  # a legitimately impossible split (everything purged)
        assume("training samples left" not in str(exc))
        raise


@settings(max_examples=300, deadline=None)
@given(data=panels(), cv=splitters())
def test_no_training_label_overlaps_a_test_label_or_starts_in_the_embargo(data, cv):
    t0, t1 = data
    embargo = cv.embargo_bars(t0, t1)
    for train, test in splits_or_skip(cv, t0, t1):
        assert len(train) and len(test)
        assert not np.intersect1d(train, test).size
        start, end = t0[test].min(), t1[test].max()
        # No training span meets any test span (nor the hull of the test spans).
        assert not ((t1[train] >= start) & (t0[train] <= end)).any()
        for i in test:
            assert not ((t1[train] >= t0[i]) & (t0[train] <= t1[i])).any()
        # Nothing starts within the embargo after the test labels end.
        assert not ((t0[train] > end) & (t0[train] <= end + embargo)).any()


@settings(max_examples=300, deadline=None)
@given(data=panels(), cv=splitters())
def test_test_folds_are_disjoint_time_ordered_blocks_that_never_split_a_timestamp(data, cv):
    t0, t1 = data
    folds = [test for _, test in splits_or_skip(cv, t0, t1)]
    assert len(folds) == cv.n_splits
    for a, b in itertools.pairwise(folds):
        assert t0[a].max() < t0[b].min()
    covered = np.concatenate(folds)
    assert len(np.unique(covered)) == len(covered)
    # Each fold holds every sample of each of its timestamps; the folds cover the tail.
    for test in folds:
        assert set(np.flatnonzero(np.isin(t0, t0[test]))) == set(test)
    first = t0[folds[0]].min()
    expected = np.arange(len(t0)) if cv.mode == "kfold" else np.flatnonzero(t0 >= first)
    np.testing.assert_array_equal(np.sort(covered), expected)
    if cv.mode != "kfold":
        assert t0.max() in t0[folds[-1]]


@settings(max_examples=200, deadline=None)
@given(data=panels(), cv=splitters(modes=("expanding",)))
def test_expanding_training_is_everything_unpurged_before_the_fold_and_grows(data, cv):
    t0, t1 = data
    previous = np.zeros(0, dtype=np.int64)
    for train, test in splits_or_skip(cv, t0, t1):
        start = t0[test].min()
        # Exactly the samples whose labels end before the fold: the purge removes no more.
        np.testing.assert_array_equal(train, np.flatnonzero(t1 < start))
        assert set(previous) <= set(train)
        previous = train


@settings(max_examples=200, deadline=None)
@given(data=panels(), cv=splitters(modes=("rolling",)))
def test_rolling_training_stays_within_its_window(data, cv):
    t0, t1 = data
    times = np.unique(t0)
    for train, test in splits_or_skip(cv, t0, t1):
        first = np.searchsorted(times, t0[test].min())
        size = cv.train_size or len(times) - cv.n_splits * (len(times) // (cv.n_splits + 1))
        lowest = times[max(0, first - size)]
        assert (t0[train] >= lowest).all()
        assert (t1[train] < t0[test].min()).all()


def test_kfold_embargo_drops_the_samples_right_after_the_test_fold():
    t0 = np.arange(100)
    t1 = t0 + 2
    train, test = next(iter(PurgedWalkForward(4, "kfold", embargo=5).split(t0, t1)))
    np.testing.assert_array_equal(test, np.arange(25))
    # test labels end at 24 + 2 = 26; purge to 26, embargo 5 more bars: training from 32.
    np.testing.assert_array_equal(train, np.arange(32, 100))
    fraction = PurgedWalkForward(4, "kfold", embargo=0.05)
    assert fraction.embargo_bars(t0, t1) == 6  # ceil(0.05 * 102 bars)


def test_timestamps_split_like_their_positions():
    times = np.array(["2024-01-01T09:15", "2024-01-01T09:20", "2024-01-01T09:25"], "M8[ns]")
    t0 = np.repeat(np.arange(30), 2)
    t1 = t0 + 1
    axis = np.arange(31).astype("timedelta64[m]") + times[0]
    by_time = list(PurgedWalkForward(3, embargo=0).split(axis[t0], axis[t1]))
    by_pos = list(PurgedWalkForward(3, embargo=0).split(t0, t1))
    for (a_train, a_test), (b_train, b_test) in zip(by_time, by_pos, strict=True):
        np.testing.assert_array_equal(a_train, b_train)
        np.testing.assert_array_equal(a_test, b_test)


def test_purge_and_validation_tail():
    t0 = np.arange(20)
    t1 = t0 + 3
    np.testing.assert_array_equal(
        purge(np.arange(20), t0, t1, 10, 12, embargo=2), [*range(7), *range(15, 20)]
    )
    fit, val = validation_tail(np.arange(20), t0, t1, 0.25)
    np.testing.assert_array_equal(val, np.arange(15, 20))
    np.testing.assert_array_equal(fit, np.arange(12))  # 12..14 end inside the tail: purged


@pytest.mark.parametrize(
    ("kwargs", "t0", "t1", "message"),
    [
        ({"n_splits": 5}, np.arange(5), None, "too few samples for 5 folds"),
        ({"n_splits": 2}, np.arange(10), np.arange(10) - 1, r"t1 >= t0"),
        ({"n_splits": 2}, np.arange(10.0), np.full(10, np.nan), "NaN"),
        ({"n_splits": 2}, np.arange(10), np.arange(9), "same length"),
        ({"n_splits": 3, "min_train": 50}, np.arange(40), None, "min_train=50"),
        ({"n_splits": 2}, np.zeros(30, dtype=int), np.full(30, 29), "too few samples"),
    ],
)
def test_bad_input_raises_a_clear_value_error(kwargs, t0, t1, message):
    with pytest.raises(ValueError, match=message):
        list(PurgedWalkForward(**kwargs).split(t0, t1))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_splits": 0}, "n_splits"),
        ({"n_splits": 1, "mode": "kfold"}, "n_splits"),
        ({"mode": "random"}, "mode must be"),
        ({"embargo": -1}, "embargo"),
        ({"embargo": 1.5}, "embargo"),
        ({"train_size": 10}, "train_size"),
    ],
)
def test_bad_parameters_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PurgedWalkForward(**kwargs)


def test_a_fold_left_empty_by_the_purge_raises():
    t0 = np.arange(12)
    t1 = np.full(12, 11)  # every label runs to the end: everything overlaps every fold
    with pytest.raises(ValueError, match="fold 0: 0 training samples left"):
        list(PurgedWalkForward(3).split(t0, t1))


def test_time_positions_rank_timestamps_on_one_axis():
    t0 = np.array(["2024-01-02", "2024-01-01", "2024-01-02"], "M8[D]")
    t1 = np.array(["2024-01-05", "2024-01-02", "2024-01-03"], "M8[D]")
    p0, p1 = time_positions(t0, t1)
    np.testing.assert_array_equal(p0, [1, 0, 1])
    np.testing.assert_array_equal(p1, [3, 1, 2])
