"""The counters' four operations mean the same in this process and in a real Redis.

Every test runs against `LocalCounters` and against `RedisCounters` on a throwaway
`redis-server` (skipped, saying why, when there is none).
"""

from __future__ import annotations

import random
import uuid

import pytest

from router.guards.counters import Counters, LocalCounters, Window, part_name


@pytest.fixture(params=["local", "redis"])
def counters(request: pytest.FixtureRequest) -> Counters:
    if request.param == "local":
        return LocalCounters()
    import redis

    from router.guards.counters_redis import RedisCounters

    url = request.getfixturevalue("redis").url
    return RedisCounters(redis.Redis.from_url(url), url, prefix=f"t{uuid.uuid4().hex[:8]}:")


def test_a_window_holds_at_most_its_limit_and_says_when_there_is_room(counters: Counters) -> None:
    w = Window("rpm:k", 3)
    for t in (0.0, 10.0, 20.0):
        assert counters.take([w], uuid.uuid4().hex, 1000 + t).refused is None
    taken = counters.take([w], "x", 1030.0)
    assert taken.refused == 0 and taken.used == (3,)
    assert taken.retry_after == pytest.approx(30.0)  # the call at 1000 leaves at 1060
    assert counters.take([w], "x", 1060.0).refused is None  # now there is room
    assert counters.take([w], "y", 1060.0).refused == 0


def test_random_traffic_never_gets_more_than_the_limit_in_any_minute(counters: Counters) -> None:
    rng = random.Random(7)
    w = Window("rpm:k", 20)
    t, passed = 5000.0, []
    for i in range(300):
        t += rng.expovariate(1 / 0.6)  # ~100 calls a minute against a limit of 20
        if counters.take([w], f"c{i}", t).refused is None:
            passed.append(t)
    assert all(sum(1 for u in passed if s <= u < s + 60) <= 20 for s in passed)
    assert len(passed) >= 20 * int((t - 5000) // 60)  # and the limit is used, not starved


def test_a_charge_is_all_or_nothing_over_several_windows(counters: Counters) -> None:
    small, big = Window("tpm:a", 100, (60, 30)), Window("tpm:b", 1000, (60, 30))
    assert counters.take([big, small], "c1", 0.0).used == (90, 90)
    taken = counters.take([big, small], "c2", 1.0)
    assert taken.refused == 1 and taken.used == (90, 90)  # small is full: big not charged either
    assert counters.take([big], "c3", 2.0).used == (180,)


def test_amend_sets_one_part_of_a_charge(counters: Counters) -> None:
    w = Window("tpm:k", 1000, (200, 700))
    counters.take([w], "d1", 0.0)
    assert counters.take([Window("tpm:k", 1000, (50, 100))], "d2", 1.0).refused == 0
    counters.amend("tpm:k", part_name("d1", 1), 40, 2.0)  # reserved 700 output, used 40
    assert counters.take([Window("tpm:k", 1000, (50, 100))], "d2", 3.0).used == (390,)
    counters.amend("tpm:k", "unknown", 5, 3.0)  # nothing to amend: nothing happens
    counters.amend("tpm:k", "d1", 10, 70.0)  # left the window already: nothing happens
    assert counters.take([Window("tpm:k", 1000, (1,))], "d3", 70.0).used == (1,)


def test_sums_add_read_never_go_negative_and_rise_to_the_store(counters: Counters) -> None:
    assert counters.add({"s:a": 1.5, "s:b": 0.25}) == pytest.approx((1.5, 0.25))
    assert counters.add({"s:a": -0.5}) == pytest.approx((1.0,))
    assert counters.add({"s:b": -1.0}) == (0.0,)
    counters.floor({"s:a": 0.5, "s:c": 3.0})  # a floor lower than the sum leaves it
    assert counters.get(["s:a", "s:b", "s:c", "s:none"]) == pytest.approx((1.0, 0.0, 3.0, 0.0))
    taken = counters.take([], "e", 0.0, reads=["s:c", "s:a"])
    assert taken.refused is None and taken.values == pytest.approx((3.0, 1.0))
