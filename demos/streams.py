"""A plain function as a stream of one item: code that runs either kind of function (a tab's action, a GPU function
on any device) has one path for both."""

from __future__ import annotations

from collections.abc import Iterator


def as_stream(call, args, kwargs, *, streams: bool) -> Iterator:
    """A call's results as a stream: a generator function's items (computed as they are taken); a plain function's
    result, its one item (computed now, so its errors are raised here)."""
    return call(*args, **kwargs) if streams else iter((call(*args, **kwargs),))
