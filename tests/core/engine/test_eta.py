"""The ETA: no extrapolation from the warm-up, then a smoothed steady speed."""

import pytest

from guidl.engine.eta import EtaEstimator


def _feed(estimator, times):
    """Feed batch durations; return the ETA after each batch for 1,000 batches in all."""
    etas, seconds = [], 0.0
    for batches, duration in enumerate(times, 1):
        seconds += duration
        estimator.update(batches, seconds)
        etas.append(estimator.eta(1000 - batches))
    return etas


def test_a_slow_first_batch_is_not_extrapolated():
    # The char LSTM: its first batch took 2 s (compiling, allocating), the others 40 ms.
    # Averaged from the start, the first ETA said 999 x 2 s = 33 minutes.
    etas = _feed(EtaEstimator(), [2.0] + [0.04] * 30)
    assert etas[:11] == [None] * 11  # the warm-up, then 10 batches of steady timing
    first = next(eta for eta in etas if eta is not None)
    assert first == pytest.approx((1000 - 12) * 0.04)
    assert etas[-1] == pytest.approx((1000 - 31) * 0.04)


def test_slow_batches_get_an_eta_after_a_second_of_steady_timing():
    etas = _feed(EtaEstimator(), [5.0, 3.0, 1.5, 1.5])
    assert etas[:2] == [None, None]  # warming up
    assert etas[2] == pytest.approx(997 * 1.5)  # one batch of 1.5 s: a second of steady timing


def test_the_eta_is_smoothed_and_follows_a_change_of_speed():
    estimator = EtaEstimator()
    _feed(estimator, [0.1] * 50)
    assert estimator.rate == pytest.approx(10.0)
    estimator.update(51, 5.0 + 1.0)  # a batch and a validation pass: 1 s
    assert 9.0 < estimator.rate < 10.0  # moves a little, no jump to 1 batch a second
    seconds = 6.0
    for batches in range(52, 200):  # now twice as slow: the speed follows within seconds
        seconds += 0.2
        estimator.update(batches, seconds)
    assert estimator.rate == pytest.approx(5.0, rel=0.05)


def test_nothing_is_known_before_the_first_batches():
    estimator = EtaEstimator()
    assert estimator.rate is None and estimator.eta(100) is None
    estimator.update(1, 0.5)
    estimator.update(2, 0.6)
    assert estimator.eta(100) is None
