"""Streams of results: a plain function as a stream of one item (code that runs either kind of function, a tab's
action or a GPU function on any device, has one path for both), and a stream of growing states given at a reader's
pace."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")
_NONE_HELD = object()


def as_stream(call, args, kwargs, *, streams: bool) -> Iterator:
    """A call's results as a stream: a generator function's items (computed as they are taken); a plain function's
    result, its one item (computed now, so its errors are raised here)."""
    return call(*args, **kwargs) if streams else iter((call(*args, **kwargs),))


def paced(states: Iterable[T], every_s: float, clock=time.monotonic) -> Iterator[T]:
    """A stream of growing states (each holds all that came before it, as a streamed answer's text so far) at most one
    per `every_s`: the first at once, then the newest one each time `every_s` has passed since the last one given,
    and always the last. A state is held back at most until the next one comes. Closing this stream closes `states`
    (a closed answer stops its generation)."""
    given_at, held = None, _NONE_HELD
    try:
        for state in states:
            now = clock()
            if given_at is not None and now - given_at < every_s:
                held = state
                continue
            given_at, held = now, _NONE_HELD
            yield state
        if held is not _NONE_HELD:
            yield held
    finally:
        getattr(states, "close", lambda: None)()
