"""A small thread-safe LRU cache for expensive intermediate results (features of one image or clip).

Entries can be tied to an `owner` (the model that computed them): an entry whose owner is gone or is
another object (a reloaded model) counts as a miss, so stale features are never served.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict


class LRUCache:
    def __init__(self, max_entries: int):
        self.max_entries = max_entries
        self._items: OrderedDict = OrderedDict()  # key -> (value, weakref to owner or None)
        self._lock = threading.Lock()

    def get(self, key, owner=None):
        """The value, or None on a miss (absent, or computed by another owner)."""
        with self._lock:
            entry = self._items.get(key)
            if entry is not None and (entry[1] is None or entry[1]() is owner):
                self._items.move_to_end(key)
                return entry[0]
            return None

    def put(self, key, value, owner=None) -> None:
        with self._lock:
            self._items[key] = (value, None if owner is None else weakref.ref(owner))
            self._items.move_to_end(key)
            while len(self._items) > self.max_entries:
                self._items.popitem(last=False)

    def get_or_compute(self, key, compute, owner=None):
        """(value, hit). The computation runs outside the lock; model events are serialised anyway."""
        value = self.get(key, owner)
        if value is not None:
            return value, True
        value = compute()
        self.put(key, value, owner)
        return value, False

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        return len(self._items)
