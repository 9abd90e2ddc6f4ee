"""The shared LRU cache: bounded, least recently used first out, never serves another model's results."""

import gc

import torch

from demos.cache import LRUCache


def test_bounded_and_forgets_the_least_recently_used():
    cache = LRUCache(2)
    cache.put("a", "A")
    cache.put("b", "B")
    assert cache.get("a") == "A"  # now "b" is the least recently used
    cache.put("c", "C")
    assert len(cache) == 2 and cache.get("b") is None and cache.get("a") == "A" and cache.get("c") == "C"


def test_get_or_compute_reports_hits():
    cache = LRUCache(2)
    assert cache.get_or_compute("d", lambda: "D") == ("D", False)
    assert cache.get_or_compute("d", lambda: "?") == ("D", True)


def test_results_of_another_or_a_dead_owner_are_stale():
    cache = LRUCache(4)
    model, reloaded = torch.nn.Linear(1, 1), torch.nn.Linear(1, 1)
    cache.put("features", "F", owner=model)
    assert cache.get("features", owner=model) == "F"
    assert cache.get("features", owner=reloaded) is None
    del model
    gc.collect()
    assert cache.get("features", owner=reloaded) is None
    assert cache.get_or_compute("features", lambda: "F2", owner=reloaded) == ("F2", False)
