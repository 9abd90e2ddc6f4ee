"""Streams of results: `demos.streams`."""

from __future__ import annotations

from demos.streams import paced


class Clock:
    """A clock the test moves: each state of `timed` is taken at its own time."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def timed(clock: Clock, states: list[tuple[float, str]]):
    for at, state in states:
        clock.now = at
        yield state


def test_paced_gives_the_first_state_at_once_the_newest_once_per_interval_and_always_the_last():
    clock = Clock()
    states = [(0.0, "a"), (0.03, "ab"), (0.06, "abc"), (0.11, "abcd"), (0.15, "abcde"), (0.19, "abcdef"),
              (0.22, "abcdefg"), (0.25, "abcdefgh")]
    # "abcd" comes 0.11 s after "a" was given; "abcdefg" 0.11 s after "abcd"; "abcdefgh", the last, at the end.
    assert list(paced(timed(clock, states), 0.1, clock)) == ["a", "abcd", "abcdefg", "abcdefgh"]


def test_paced_gives_every_state_of_a_slow_stream_and_the_only_one_of_a_single_state():
    clock = Clock()
    slow = [(0.0, "a"), (0.5, "ab"), (1.0, "abc")]
    assert list(paced(timed(clock, slow), 0.1, clock)) == ["a", "ab", "abc"]
    assert list(paced(iter(["only"]), 0.1, clock)) == ["only"]
    assert list(paced(iter([]), 0.1, clock)) == []


def test_closing_a_paced_stream_closes_its_source():
    """A learner who closes the page stops the answer: the source's `finally` runs at once, not when it is collected."""
    closed = []

    def source():
        try:
            yield from ("a", "ab", "abc")
        finally:
            closed.append(True)

    stream = paced(source(), 0.1)
    assert next(stream) == "a"
    stream.close()
    assert closed == [True]
