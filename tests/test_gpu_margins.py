"""The margins GPU calls ask, learned from the calls seen (`demos.gpu_margins`), on a clock the tests move."""

import pytest

from demos.gpu_margins import LARGEST_MARGIN_S, Assumed, GpuMargins

ASSUMED = Assumed(cold_s=6.0, warm_s=1.0, warm_for_s=30.0)
WORK_S = 0.5


def _call(margins, function, now, overhead, work_s=WORK_S):
    """A call of `function` starting at `now` that returns after its work and `overhead`; what it asked, and warm."""
    ask = margins.ask(function, now)
    warm, _ = margins.returned(function, ask, started=now, now=now + work_s + overhead, work_s=work_s)
    return ask, warm


def test_it_starts_from_the_assumed_margins():
    margins = GpuMargins(ASSUMED)
    assert margins.margin("f", warm=False) == 6.0 and margins.margin("f", warm=True) == 1.0
    assert margins.warm_for() == 30.0
    assert not margins.peek("f", 0.0).warm  # no worker yet: a fresh one


def test_margins_follow_the_overheads_seen_per_function_and_kind():
    margins = GpuMargins(ASSUMED)
    ask, warm = _call(margins, "f", 0.0, overhead=4.0)
    assert not ask.warm and not warm
    ask, warm = _call(margins, "f", 10.0, overhead=0.2)
    assert ask.warm and warm and ask.idle_s == pytest.approx(10.0 - 4.5)
    assert margins.margin("f", warm=False) == pytest.approx(4.0 * 1.25 + 0.5)
    assert margins.margin("f", warm=True) == pytest.approx(0.5 + 0.2 * 1.25)
    # A function not seen yet starts from what the others taught, then follows its own calls.
    assert margins.margin("g", warm=False) == margins.margin("f", warm=False)
    _call(margins, "g", 20.0, overhead=2.0)
    assert margins.margin("g", warm=False) == pytest.approx(2.0 * 1.25 + 0.5)
    assert GpuMargins(ASSUMED).margin("g", warm=False) == 6.0  # in a process that has seen nothing, the assumption


def test_a_cold_abort_raises_the_next_cold_margin_of_every_function_until_a_cold_call_returns():
    margins = GpuMargins(ASSUMED)
    ask = margins.ask("f", 0.0)
    margins.aborted("f", ask)
    assert margins.margin("f", warm=False) == 12.0 and margins.margin("g", warm=False) == 12.0
    margins.aborted("f", margins.ask("f", 20.0))
    assert margins.margin("f", warm=False) == min(24.0, LARGEST_MARGIN_S)
    _call(margins, "f", 40.0, overhead=12.2)  # a slow start, now seen: the margin follows it
    assert margins.margin("f", warm=False) == pytest.approx(12.2 * 1.25 + 0.5)


def test_the_warm_window_shrinks_where_a_worker_was_found_gone_and_grows_where_found_warm():
    margins = GpuMargins(ASSUMED)
    _call(margins, "f", 0.0, overhead=5.0)
    ask = margins.ask("f", 5.5 + 25.0)  # idle 25 s: inside the assumed 30 s, asked warm...
    assert ask.warm
    margins.aborted("f", ask)  # ...and ran out of time: the worker was gone after 25 s
    assert margins.warm_for() == pytest.approx(25.0)
    assert margins.margin("f", warm=True) == 1.0  # the warm margin is not to blame
    _call(margins, "f", 100.0, overhead=5.0)
    _, warm = _call(margins, "f", 105.5 + 20.0, overhead=0.1)  # found warm after 20 s idle
    assert warm and margins.warm_for() == pytest.approx(25.0)
    _call(margins, "g", 200.0, overhead=5.0)
    ask, warm = _call(margins, "g", 205.5 + 40.0, overhead=0.1)  # asked cold after 40 s idle, found warm
    assert not ask.warm and warm and margins.warm_for() == pytest.approx(40.0)


def test_concurrent_calls_each_take_an_idle_worker_or_a_fresh_one():
    margins = GpuMargins(ASSUMED)
    _call(margins, "f", 0.0, overhead=5.0)
    first, second = margins.ask("f", 10.0), margins.ask("f", 10.0)
    assert first.warm and not second.warm and second.idle_s is None
    margins.refused("f", first, 11.0)  # refused before it ran: its worker is idle still
    assert margins.peek("f", 12.0).warm


def test_the_margin_stays_within_bounds():
    margins = GpuMargins(ASSUMED)
    for start in range(0, 500, 100):
        margins.aborted("f", margins.ask("f", float(start)))
    assert margins.margin("f", warm=False) == LARGEST_MARGIN_S
    _call(margins, "h", 0.0, overhead=5.0)
    _call(margins, "h", 6.0, overhead=0.0)
    assert margins.margin("h", warm=True) == 0.5


def test_a_function_whose_calls_took_longer_than_estimated_asks_for_what_they_took():
    margins = GpuMargins(ASSUMED)
    assert margins.work("f", 0.4) == 0.4
    _call(margins, "f", 0.0, overhead=5.0, work_s=3.0)
    assert margins.work("f", 0.4) == 3.0 and margins.work("f", 7.0) == 7.0 and margins.work("g", 0.4) == 0.4
