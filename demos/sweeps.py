"""Sweeps: every setting a gesture can reach, computed together once, then read two ways.

A gesture (6.1's ratio, 6.2-6.3's block, 6.4's tube) reaches a small, known set of settings for one input and
the other controls. A concept computes them all in one device pass (one GPU call on ZeroGPU) into a sweep; the
page plays the sweep back while the hand moves (`demos.tabs.sweep_player`), and the concept's endpoint answers a
setting from it with no device call. What a sweep holds is the concept's own business (its compute module); this
module keeps sweeps and packs their pictures for the page:

- `SweepStore`: sweeps by key, each computed once per process however many visitors ask at once, the most recent
  kept in memory; the bundled examples' sweeps (the same for every learner) also on disk, so a restart does not
  compute them again.
- `Playback`: what the page needs to play a sweep: each setting's numbers as text and its pictures as tiles of one
  lossless WebP sprite sheet.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import io
import json
import logging
import math
import os
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import PIL.Image

log = logging.getLogger(__name__)

ENV_SWEEP_DIR = "PDR_SWEEP_DIR"
# Spaces with persistent storage mount it at /data; elsewhere the user's cache folder.
PERSISTENT_DIR = Path("/data")
SPRITE_MAX_SIDE = 16383  # WebP's largest side


def sweep_dir() -> Path:
    """Where the bundled examples' sweeps are kept across restarts: PDR_SWEEP_DIR, else the Space's persistent
    storage, else ~/.cache (or the temp folder when there is no home)."""
    if os.environ.get(ENV_SWEEP_DIR):
        return Path(os.environ[ENV_SWEEP_DIR])
    if PERSISTENT_DIR.is_dir() and os.access(PERSISTENT_DIR, os.W_OK):
        return PERSISTENT_DIR / "predict-dont-reconstruct" / "sweeps"
    home = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    try:
        return home / "predict-dont-reconstruct" / "sweeps"
    except RuntimeError:  # no home
        return Path(tempfile.gettempdir()) / "predict-dont-reconstruct" / "sweeps"


# ---------------------------------------------------------------------------------------------
# Saving a sweep: plain arrays and JSON (no pickle), so a file on disk is only ever data
# ---------------------------------------------------------------------------------------------

_JSON = "__json__"


def save_arrays(path: Path, arrays: dict[str, np.ndarray], meta: dict) -> None:
    """`arrays` and a JSON-able `meta` in one .npz, written whole (a temporary file renamed), so that a reader never
    sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".tmp", delete=False) as handle:
        np.savez_compressed(handle, **arrays, **{_JSON: np.array(json.dumps(meta))})
    os.replace(handle.name, path)


def load_arrays(path: Path) -> tuple[dict[str, np.ndarray], dict]:
    with np.load(path, allow_pickle=False) as data:
        arrays = {name: data[name] for name in data.files if name != _JSON}
        return arrays, json.loads(str(data[_JSON]))


@dataclass(frozen=True)
class Codec:
    """How a concept's sweep becomes arrays and JSON on disk, and back (`SweepStore`'s disk side)."""

    encode: Callable[[object], tuple[dict[str, np.ndarray], dict]]
    decode: Callable[[dict[str, np.ndarray], dict], object]
    version: int = 1  # bump when the format or the computation changes: older files are then ignored


class SweepStore:
    """A concept's sweeps by key, each computed once per process.

    `get_or_compute(key, compute, keep_on_disk=...)`: the sweep, computing it when no one has; visitors asking for
    the same key at once wait for the one computation. `keep_on_disk` (the bundled examples) also writes it to
    `sweep_dir()` and reads it from there first. `stream_or_compute` does the same for a computation that yields
    the sweep as it grows (a slow device); a computation in steps of its own uses the parts: `find` (memory, then
    disk: an endpoint answers from a sweep when there is one), `computing(key)` (one computation at a time) and
    `keep`. The key must name everything the sweep depends on (the input's content, the other controls, the
    checkpoints and their weights (`checkpoints.weights_id`), the device's plan).
    """

    def __init__(self, name: str, max_entries: int, codec: Codec | None = None):
        self.name, self.max_entries, self.codec = name, max_entries, codec
        self._items: OrderedDict = OrderedDict()
        self._lock = threading.Lock()
        self._computing: dict = {}  # key -> [lock held while one thread computes it, callers holding or waiting]

    def get(self, key):
        """The sweep in memory, or None."""
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            return None

    def put(self, key, sweep) -> None:
        with self._lock:
            self._items[key] = sweep
            self._items.move_to_end(key)
            while len(self._items) > self.max_entries:
                self._items.popitem(last=False)

    def find(self, key, *, on_disk: bool = False):
        """The sweep in memory, else (with `on_disk`) on disk, kept in memory from then on; None when neither has it."""
        sweep = self.get(key)
        if sweep is None and on_disk:
            sweep = self._read(key)
            if sweep is not None:
                self.put(key, sweep)
        return sweep

    def keep(self, key, sweep, *, keep_on_disk: bool = False) -> None:
        """Keep a sweep computed by the caller (see `computing`); `keep_on_disk` writes it to disk too."""
        if keep_on_disk:
            self._write(key, sweep)
        self.put(key, sweep)

    @contextlib.contextmanager
    def computing(self, key):
        """Held while one caller computes the sweep of `key`: a second caller of the same key waits here, then
        `find`s the first one's sweep. For a computation in steps (a sweep that grows on a slow device)."""
        with self._lock:
            entry = self._computing.setdefault(key, [threading.Lock(), 0])
            entry[1] += 1  # callers holding or waiting for it: the lock is forgotten when none is left
        try:
            with entry[0]:
                yield
        finally:
            with self._lock:
                entry[1] -= 1
                if entry[1] == 0:
                    self._computing.pop(key, None)

    def get_or_compute(self, key, compute: Callable[[], object], *, keep_on_disk: bool = False) -> tuple[object, bool]:
        """(sweep, computed now)."""
        *_, last = self.stream_or_compute(key, lambda: iter((compute(),)), keep_on_disk=keep_on_disk)
        return last

    def stream_or_compute(self, key, compute: Callable[[], Iterator], *, keep_on_disk: bool = False,
                          is_whole: Callable[[object], bool] = lambda sweep: True) -> Iterator:
        """(sweep, computed now) as the sweep grows: `compute()` yields partial sweeps, its last item the whole one,
        which alone is kept (a computation that stops early, its last item not `is_whole`, keeps nothing here). A
        stored sweep is yielded once. A second visitor waits for the first one's computation."""
        sweep = self.find(key, on_disk=keep_on_disk)
        if sweep is not None:
            yield sweep, False
            return
        with self.computing(key):
            sweep = self.find(key, on_disk=keep_on_disk)
            if sweep is not None:
                yield sweep, False
                return
            for sweep in compute():
                yield sweep, True
            if is_whole(sweep):
                self.keep(key, sweep, keep_on_disk=keep_on_disk)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def path(self, key) -> Path:
        import hashlib

        version = self.codec.version if self.codec else 0
        digest = hashlib.blake2b(repr((self.name, version, key)).encode(), digest_size=16).hexdigest()
        return sweep_dir() / self.name / f"{digest}.npz"

    def _read(self, key):
        if self.codec is None:
            return None
        path = self.path(key)
        try:
            arrays, meta = load_arrays(path)
            if meta.get("key") != repr(key):
                return None
            return self.codec.decode(arrays, meta)
        except FileNotFoundError:
            return None
        except Exception:  # a damaged or foreign file is computed again, never served
            log.warning("Ignoring the unreadable sweep file %s", path, exc_info=True)
            return None

    def _write(self, key, sweep) -> None:
        if self.codec is None:
            return
        try:
            arrays, meta = self.codec.encode(sweep)
            save_arrays(self.path(key), arrays, {**meta, "key": repr(key)})
        except OSError as error:  # a read-only or full disk only costs the next restart a computation
            log.warning("Could not keep the %s sweep on disk: %s", self.name, error)


# ---------------------------------------------------------------------------------------------
# What the page plays back
# ---------------------------------------------------------------------------------------------


def sprite_sheet(cells: Sequence[Sequence[np.ndarray]], *, fast: bool = False) -> tuple[bytes, dict]:
    """One lossless WebP holding every setting's pictures: a cell per setting (its pictures side by side, all the
    same size), cells in rows. Returns the file's bytes and its layout (`cell`, `columns`, `tile`). `fast`: encoded
    about 15x sooner, about 1.5x larger (169 close-ups of 6.2-6.3: 0.7 s and 5.8 MB against 10.6 s and 3.8 MB on the
    2-core CPU), for a sweep sent again as it grows."""
    tile_h, tile_w = cells[0][0].shape[:2]
    per_cell = len(cells[0])
    cell_w = tile_w * per_cell
    columns = max(1, min(len(cells), math.ceil(math.sqrt(len(cells) * tile_h / cell_w)),
                         SPRITE_MAX_SIDE // cell_w))
    rows = math.ceil(len(cells) / columns)
    sheet = np.zeros((rows * tile_h, columns * cell_w, 3), np.uint8)
    for index, pictures in enumerate(cells):
        row, column = divmod(index, columns)
        for slot, picture in enumerate(pictures):
            if picture.shape[:2] != (tile_h, tile_w):
                raise ValueError(f"sprite tiles differ in size: {picture.shape[:2]} and {(tile_h, tile_w)}")
            x = column * cell_w + slot * tile_w
            sheet[row * tile_h:(row + 1) * tile_h, x:x + tile_w] = picture[..., :3]
    buffer = io.BytesIO()
    effort = {"quality": 0, "method": 0} if fast else {"quality": 100, "method": 4}
    PIL.Image.fromarray(sheet).save(buffer, format="WEBP", lossless=True, **effort)
    return buffer.getvalue(), {"columns": columns, "tile": [tile_w, tile_h], "per_cell": per_cell}


@dataclass
class Playback:
    """A sweep as the page plays it: for each setting (`settings`, the gesture's values), its pictures (named, drawn
    into the page's pictures of those names) and its texts (named, HTML, drawn into the page's texts)."""

    settings: list[list[float]]
    pictures: dict[str, list[np.ndarray]] = field(default_factory=dict)
    alts: dict[str, list[str]] = field(default_factory=dict)  # each picture's alt text, per setting
    texts: dict[str, list[str]] = field(default_factory=dict)
    total: int | None = None  # the settings the gesture reaches, when `settings` holds only those computed so far
    note: str = ""  # a line for the page: what is live, or why not yet

    def payload(self, *, fast: bool = False) -> dict:
        """The player's `sweep` prop: JSON, pictures as one data URL (`fast`: see `sprite_sheet`)."""
        names = list(self.pictures)
        sprite, layout = (sprite_sheet([[self.pictures[name][i] for name in names]
                                        for i in range(len(self.settings))], fast=fast) if names else (b"", {}))
        return {
            "settings": self.settings,
            "pictures": names,
            "alts": self.alts,
            "texts": self.texts,
            "sprite": "data:image/webp;base64," + base64.b64encode(sprite).decode("ascii") if names else None,
            "sprite_bytes": len(sprite),
            "layout": layout,
            "done": len(self.settings),
            "total": len(self.settings) if self.total is None else self.total,
            "note": self.note,
        }


def markdown_html(text: str) -> str:
    """Markdown as the page's text shows it (gradio's Markdown renders CommonMark with GitHub's tables and
    strikethrough), for a text a sweep plays back."""
    return _commonmark().render(text)


@functools.cache
def _commonmark():
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark").enable(["table", "strikethrough"])
