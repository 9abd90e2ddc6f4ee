"""Class names a learner can read, from the raw `id2label` strings the probe checkpoints carry.

Two formats reach the page (no gradio here; torch only as the probabilities `top_labels` reads):

- Something-Something v2 names are templates with bracketed placeholders, as in the label file the
  V-JEPA 2 demo reads (huggingface/label-files `something-something-v2-id2label.json`):
  "Putting [something] into [something]", "[Something] falling like a rock". The brackets go.
- Diving48 names are the dataset's four attributes (take-off, somersaults, twists, flight position)
  written as a Python list: "['Inward', '35som', 'NoTwis', 'TUCK']". The codes are spelled out:
  "Inward, 3.5 somersaults, no twist, tuck". A two-digit count is a whole and a half ("35som" is
  3.5 somersaults, "05Twis" half a twist); "Dive" is a plain dive, without a somersault.

A checkpoint without names (`LABEL_7`, or nothing) gets "class 7 (the checkpoint names no label)".
The raw string stays what the API returns; this module only makes the text shown beside it, and ranks a probe's
classes as the page and the grounded prompt show them (`top_labels`).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    import torch

_TAKEOFFS = {"back": "Back", "forward": "Forward", "inward": "Inward", "reverse": "Reverse", "armstand": "Armstand"}
_POSITIONS = {"tuck": "tuck", "pike": "pike", "str": "straight", "free": "free position"}
_SOMERSAULTS = {"dive": "dive"}  # a dive with no somersault: the diver only rotates into the water
_TWISTS = {"notwis": "no twist"}
# "35som" = 3.5 somersaults, "2som" = 2, "05Twis" = 0.5 twists: a second digit is the half.
_COUNT = re.compile(r"(?P<whole>\d)(?P<half>5)?(?P<kind>som|twis)", re.IGNORECASE)
_UNNAMED = re.compile(r"LABEL_\d+")
_PLACEHOLDER = re.compile(r"\[([^\[\]]*)\]")
_PLACEHOLDER_WORDS = {"number of": "a number of"}  # "Stacking [number of] [something]" reads "Stacking a number of something"


def readable_label(raw: str, index: int) -> str:
    """The class name as a learner reads it (see the module docstring for the formats)."""
    text = " ".join(str(raw or "").split())
    if not text or _UNNAMED.fullmatch(text):
        return f"class {index} (the checkpoint names no label)"
    codes = _dive_codes(text)
    if codes is not None:
        return readable_dive(codes)
    return _without_placeholders(text)


TOP_K = 5


class TopLabel(NamedTuple):
    label: str  # as a learner reads it (`readable_label`)
    probability: float
    index: int
    raw: str  # the checkpoint's own `id2label` name


def top_labels(probs: torch.Tensor, id2label: dict[int, str], k: int = TOP_K) -> list[TopLabel]:
    """The k most probable classes, most probable first, from a probability vector."""
    values, indices = probs.detach().float().reshape(-1).topk(min(k, probs.numel()))
    result, seen = [], set()
    for value, index in zip(values.tolist(), indices.tolist(), strict=True):
        raw = id2label.get(index, f"LABEL_{index}")
        name = readable_label(raw, index)
        if name in seen:  # gr.Label keys must be unique
            name = f"{name} [class {index}]"
        seen.add(name)
        result.append(TopLabel(name, float(value), index, raw))
    return result


def readable_dive(codes: Sequence[str]) -> str:
    """Diving48 attribute codes, e.g. ("Back", "Dive", "NoTwis", "PIKE"), as "Back, dive, no twist, pike".

    A code this vocabulary does not know is kept as it is, so nothing a checkpoint says is hidden.
    """
    return ", ".join(_dive_word(code, first=i == 0) for i, code in enumerate(codes))


def _dive_word(code: str, first: bool) -> str:
    key = code.strip().lower()
    if first and key in _TAKEOFFS:
        return _TAKEOFFS[key]
    for words in (_POSITIONS, _SOMERSAULTS, _TWISTS):
        if key in words:
            return words[key]
    match = _COUNT.fullmatch(key)
    if match is None:
        return code.strip()
    count = match["whole"] + (".5" if match["half"] else "")
    noun = "somersault" if match["kind"] == "som" else "twist"
    return f"{count} {noun}{'' if count == '1' else 's'}"


def _dive_codes(text: str) -> list[str] | None:
    """The codes of a Diving48 name ("['Back', '15som', ...]", its JSON twin, or bare codes); None otherwise."""
    if text.startswith("[") and text.endswith("]"):
        try:
            value = ast.literal_eval(text)  # literals only: a label string can never run code
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            return None  # e.g. the SSv2 name "[Something] being deflected from [something]"
        if isinstance(value, list | tuple) and value and all(isinstance(v, str) for v in value):
            return _as_dive([str(v) for v in value])
        return None
    return _as_dive(re.split(r"[\s,]+", text))


def _as_dive(codes: list[str]) -> list[str] | None:
    """The codes, if they read as a dive: a take-off first and at least one somersault/twist/position code."""
    codes = [c for c in codes if c]
    if len(codes) < 2 or codes[0].lower() not in _TAKEOFFS:
        return None
    rest = [c.lower() for c in codes[1:]]
    known = any(c in _POSITIONS or c in _SOMERSAULTS or c in _TWISTS or _COUNT.fullmatch(c) for c in rest)
    return codes if known else None


def _without_placeholders(text: str) -> str:
    """SSv2 template text without its brackets, starting with a capital: "[Something] falling" -> "Something falling"."""
    text = _PLACEHOLDER.sub(lambda m: _PLACEHOLDER_WORDS.get(m[1].lower(), m[1]), text)
    text = " ".join(text.split())
    return text[:1].upper() + text[1:]


# The 48 Diving48 classes in class-id order. Codes and order: the dataset's Diving48_vocab.json (class id =
# position in that list), as a public copy of the file holds it. DIVING48_LABELS writes each as Python's str()
# of the list, the form the probe's hub config is reported to hold (not checked here: no Hub access).
DIVING48_VOCABULARY: tuple[tuple[str, str, str, str], ...] = (
    ("Back", "15som", "05Twis", "FREE"),
    ("Back", "15som", "15Twis", "FREE"),
    ("Back", "15som", "25Twis", "FREE"),
    ("Back", "15som", "NoTwis", "PIKE"),
    ("Back", "15som", "NoTwis", "TUCK"),
    ("Back", "25som", "15Twis", "PIKE"),
    ("Back", "25som", "25Twis", "PIKE"),
    ("Back", "25som", "NoTwis", "PIKE"),
    ("Back", "25som", "NoTwis", "TUCK"),
    ("Back", "2som", "15Twis", "FREE"),
    ("Back", "2som", "25Twis", "FREE"),
    ("Back", "35som", "NoTwis", "PIKE"),
    ("Back", "35som", "NoTwis", "TUCK"),
    ("Back", "3som", "NoTwis", "PIKE"),
    ("Back", "3som", "NoTwis", "TUCK"),
    ("Back", "Dive", "NoTwis", "PIKE"),
    ("Back", "Dive", "NoTwis", "TUCK"),
    ("Forward", "15som", "1Twis", "FREE"),
    ("Forward", "15som", "2Twis", "FREE"),
    ("Forward", "15som", "NoTwis", "PIKE"),
    ("Forward", "1som", "NoTwis", "PIKE"),
    ("Forward", "25som", "1Twis", "PIKE"),
    ("Forward", "25som", "2Twis", "PIKE"),
    ("Forward", "25som", "3Twis", "PIKE"),
    ("Forward", "25som", "NoTwis", "PIKE"),
    ("Forward", "25som", "NoTwis", "TUCK"),
    ("Forward", "35som", "NoTwis", "PIKE"),
    ("Forward", "35som", "NoTwis", "TUCK"),
    ("Forward", "45som", "NoTwis", "TUCK"),
    ("Forward", "Dive", "NoTwis", "PIKE"),
    ("Forward", "Dive", "NoTwis", "STR"),
    ("Inward", "15som", "NoTwis", "PIKE"),
    ("Inward", "15som", "NoTwis", "TUCK"),
    ("Inward", "25som", "NoTwis", "PIKE"),
    ("Inward", "25som", "NoTwis", "TUCK"),
    ("Inward", "35som", "NoTwis", "TUCK"),
    ("Inward", "Dive", "NoTwis", "PIKE"),
    ("Reverse", "15som", "05Twis", "FREE"),
    ("Reverse", "15som", "15Twis", "FREE"),
    ("Reverse", "15som", "25Twis", "FREE"),
    ("Reverse", "15som", "35Twis", "FREE"),
    ("Reverse", "15som", "NoTwis", "PIKE"),
    ("Reverse", "25som", "15Twis", "PIKE"),
    ("Reverse", "25som", "NoTwis", "PIKE"),
    ("Reverse", "25som", "NoTwis", "TUCK"),
    ("Reverse", "35som", "NoTwis", "TUCK"),
    ("Reverse", "Dive", "NoTwis", "PIKE"),
    ("Reverse", "Dive", "NoTwis", "TUCK"),
)
DIVING48_LABELS: tuple[str, ...] = tuple(str(list(codes)) for codes in DIVING48_VOCABULARY)

# Real Something-Something v2 names (20 of 174) in the bracketed form of huggingface/label-files
# something-something-v2-id2label.json (the file facebookresearch/vjepa2's notebooks/vjepa2_demo.py reads; its
# notebook prints "Putting [something] into [something]"). Ids as in a public copy of the 174 names, which is
# alphabetical like SSv2's own labels.json; not checked against the probe's hub config (no Hub access).
SSV2_LABEL_SAMPLE: dict[int, str] = {
    0: "Approaching [something] with your camera",
    5: "Closing [something]",
    13: "Failing to put [something] into [something] because [something] does not fit",
    33: "Moving [part] of [something]",
    65: "Pretending to be tearing [something that is not tearable]",
    72: "Pretending to put [something] into [something]",
    81: "Pretending to take [something] from [somewhere]",
    93: "Pushing [something] from left to right",
    102: "Putting [number of] [something] onto [something]",
    106: "Putting [something] into [something]",
    109: "Putting [something] on a surface",
    114: "Putting [something similar to other things that are already on the table]",
    120: "Putting [something], [something] and [something] on the table",
    131: "[Something] being deflected from [something]",
    135: "[Something] falling like a rock",
    146: "Taking [one of many similar things on the table]",
    159: "Tipping [something] with [something in it] over, so [something in it] falls out",
    160: "Touching (without moving) [part] of [something]",
    166: "Turning the camera left while filming [something]",
    173: "Wiping [something] off of [something]",
}
