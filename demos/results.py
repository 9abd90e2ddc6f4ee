"""One bounded cache of whole results, shared by every visitor: identical requests are answered once.

A class following a page's call to action sends the same request many times at once (the same example, the same
block, the same question). `ResultCache.get_or_compute(key, compute)` runs `compute` once per key: a request that
arrives while it runs waits for that run, one that arrives later gets the stored result. Streams
(`stream_or_compute`) are shared while they run: a follower gets every item the first request has produced so
far, then the rest as they come. A failed or abandoned run stores nothing; its followers run it themselves.

Keys come from `request_key`: the action's name and its arguments, files by their content. Results are kept as
they are (arrays, text, numbers); files among them (a rendered video) are copied where the cache owns them and
deleted when their entry leaves it. No gradio here.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

FILES_FOLDER = Path(tempfile.gettempdir()) / "pdr-results"  # files of cached results, one folder per entry
_DIGEST_CHUNK = 1 << 20


class _Entry:
    """A result being computed (items so far) or done (`done`, its final value and size)."""

    def __init__(self):
        self.items: list = []
        self.done = False
        self.failed = False
        self.value = None
        self.nbytes = 0
        self.changed = threading.Condition()

    def settled(self) -> bool:
        """Wait until the run is done (True) or has failed (False)."""
        with self.changed:
            self.changed.wait_for(lambda: self.done or self.failed)
            return self.done

    def items_after(self, seen: int) -> tuple[list, bool, bool]:
        """Wait for items beyond the first `seen`, or the end: (new items, done, failed)."""
        with self.changed:
            self.changed.wait_for(lambda: len(self.items) > seen or self.done or self.failed)
            return self.items[seen:], self.done, self.failed


class ResultCache:
    """At most `max_entries` results and `max_bytes` of arrays and files, least recently used out first."""

    def __init__(self, max_entries: int, max_bytes: int, folder: Path = FILES_FOLDER):
        self.max_entries, self.max_bytes, self.folder = max_entries, max_bytes, folder
        self._entries: OrderedDict[str, _Entry] = OrderedDict()  # done entries, oldest first
        self._running: dict[str, _Entry] = {}
        self._lock = threading.Lock()

    def get_or_compute(self, key: str, compute: Callable[[], tuple]) -> tuple[tuple, bool]:
        """(result, hit): the stored or running result for `key`, else `compute()`'s, stored."""
        while True:
            entry, leader = self._claim(key)
            if not leader:
                if entry.settled():
                    return entry.value, True
                continue  # the run it waited for failed: run it here
            return self._lead(key, entry, lambda: compute()), False

    def stream_or_compute(self, key: str, compute: Callable[[], Iterator]) -> Iterator[tuple[object, bool]]:
        """(item, hit) for every item of the stream for `key`: its last item when stored, every item while another
        request runs it, or run here (its last item is what is stored)."""
        while True:
            entry, leader = self._claim(key)
            if leader:
                yield from ((item, False) for item in self._lead_stream(key, entry, compute))
                return
            if entry.done:  # stored: its last item is the whole result
                yield entry.value, True
                return
            seen = 0
            while True:
                fresh, finished, failed = entry.items_after(seen)
                seen += len(fresh)
                yield from ((item, True) for item in fresh)
                if finished or failed:
                    break
            if finished:
                return
            # the stream it followed failed or was abandoned: run it here (the page shows the new stream)

    def _claim(self, key: str) -> tuple[_Entry, bool]:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
                return entry, False
            if key in self._running:
                return self._running[key], False
            entry = self._running[key] = _Entry()
            return entry, True

    def _lead(self, key: str, entry: _Entry, compute: Callable[[], tuple]):
        try:
            value = compute()
        except BaseException:
            self._fail(key, entry)
            raise
        return self._finish(key, entry, value)

    def _lead_stream(self, key: str, entry: _Entry, compute: Callable[[], Iterator]):
        last = None
        try:
            for last in compute():
                with entry.changed:
                    entry.items.append(last)
                    entry.changed.notify_all()
                yield last
        except BaseException:  # an error, or the page closed the stream (GeneratorExit)
            self._fail(key, entry)
            raise
        self._finish(key, entry, last)

    def _fail(self, key: str, entry: _Entry) -> None:
        with self._lock:
            self._running.pop(key, None)
        with entry.changed:
            entry.failed = True
            entry.changed.notify_all()

    def _finish(self, key: str, entry: _Entry, value):
        value = self._keep_files(key, value)
        nbytes = _nbytes(value)
        evicted = []
        with self._lock:
            self._running.pop(key, None)
            if nbytes <= self.max_bytes:
                entry.value, entry.nbytes = value, nbytes
                self._entries[key] = entry
                while len(self._entries) > self.max_entries or self._total_bytes() > self.max_bytes:
                    evicted.append(self._entries.popitem(last=False)[0])
        for old in evicted:
            shutil.rmtree(self.folder / old, ignore_errors=True)
        with entry.changed:
            entry.value, entry.done = value, True
            entry.changed.notify_all()
        return value

    def _total_bytes(self) -> int:
        return sum(entry.nbytes for entry in self._entries.values())

    def _keep_files(self, key: str, value):
        """The value with each file it names (an absolute path to a file) copied into this entry's folder."""
        if not isinstance(value, tuple):
            return value
        kept = []
        for item in value:
            if _is_file(item):
                folder = self.folder / key
                folder.mkdir(parents=True, exist_ok=True)
                item = shutil.copy(item, folder / Path(item).name)
            kept.append(item)
        return tuple(kept)

    def clear(self) -> None:
        with self._lock:
            keys = list(self._entries)
            self._entries.clear()
        for key in keys:
            shutil.rmtree(self.folder / key, ignore_errors=True)

    def __len__(self) -> int:
        return len(self._entries)


def _is_file(value) -> bool:
    return isinstance(value, str) and os.path.isabs(value) and os.path.isfile(value)


def _nbytes(value) -> int:
    """What a result holds in memory and on disk, roughly: its arrays, texts and files."""
    if isinstance(value, tuple | list):
        return sum(_nbytes(item) for item in value)
    if isinstance(value, dict):
        return sum(_nbytes(item) for item in value.values())
    if isinstance(value, np.ndarray):
        return value.nbytes
    if _is_file(value):
        return os.path.getsize(value)
    if isinstance(value, str):
        return len(value)
    if hasattr(value, "memory_usage"):  # a pandas DataFrame (a plot's values)
        return int(value.memory_usage(deep=True).sum())
    return 64


_file_digests: dict[tuple, str] = {}  # (path, size, mtime) -> content digest
_file_digests_lock = threading.Lock()


def file_digest(path) -> str:
    """A content hash of a file, computed once per (path, size, modification time)."""
    stat = os.stat(path)
    identity = (os.path.realpath(path), stat.st_size, stat.st_mtime_ns)
    with _file_digests_lock:
        if identity in _file_digests:
            return _file_digests[identity]
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as file:
        while chunk := file.read(_DIGEST_CHUNK):
            digest.update(chunk)
    with _file_digests_lock:
        if len(_file_digests) > 4096:
            _file_digests.clear()
        _file_digests[identity] = digest.hexdigest()
    return _file_digests[identity]


def request_key(action: str, args) -> str | None:
    """The key of a request: the action and its arguments, a file by its content, a number by its value (a slider's
    0.75 and an API's 0.75 are the same request). None when an argument cannot be keyed (nothing is cached then)."""
    parts = [action]
    for value in args:
        if isinstance(value, str | os.PathLike) and value and os.path.isfile(value):
            parts.append("file:" + file_digest(value))
        elif isinstance(value, bool) or value is None:
            parts.append(repr(value))
        elif isinstance(value, int | float):
            parts.append(repr(float(value)))
        elif isinstance(value, str):
            parts.append("text:" + value)
        else:
            return None
    return hashlib.blake2b("\x1f".join(parts).encode(), digest_size=16).hexdigest()
