"""The one backoff policy every retry loop uses (feed reconnects, rotations, snapshots)."""

import random

import pytest

from fastfeed._aio import Backoff


def test_delays_double_within_half_to_full_step_and_cap():
    b = Backoff(0.5, 30.0, random.Random(1))
    steps = [min(30.0, 0.5 * 2**k) for k in range(12)]
    delays = [b.next() for _ in steps]
    for d, step in zip(delays, steps):
        assert step / 2 <= d <= step
    assert b.failures == 12
    # never a hot loop: no delay below half the first step, even over many failures
    assert min(delays) >= 0.25
    assert max(delays[-4:]) <= 30.0 and min(delays[-4:]) >= 15.0


def test_reset_starts_over():
    b = Backoff(1.0, 8.0, random.Random(2))
    for _ in range(10):
        b.next()
    b.reset()
    assert b.failures == 0 and 0.5 <= b.next() <= 1.0


def test_many_failures_do_not_overflow():
    b = Backoff(0.1, 5.0, random.Random(3))
    for _ in range(5000):
        d = b.next()
    assert 2.5 <= d <= 5.0


@pytest.mark.parametrize("initial, cap", [(0, 1), (-1, 1), (2, 1)])
def test_bad_parameters(initial, cap):
    with pytest.raises(ValueError):
        Backoff(initial, cap)
