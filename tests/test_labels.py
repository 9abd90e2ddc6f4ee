"""Class names a learner can read, from the raw id2label formats of the SSv2 and Diving48 probes."""

import json
import re

import pytest

from demos.compute.heads.labels import DIVING48_LABELS, DIVING48_VOCABULARY, SSV2_LABEL_SAMPLE, readable_dive, readable_label

# What must never reach the page: brackets, quotes, or a code the vocabulary spells out.
_LEFTOVER_CODE = re.compile(r"[\[\]'\"]|\d\d|som\b|twis\b|\bstr\b|\bdive\w", re.IGNORECASE)
_LEFTOVER_CAPS = re.compile(r"\b[A-Z]{2,}\b")  # TUCK, PIKE, STR, FREE


@pytest.mark.parametrize(("raw", "expected"), [
    ("['Inward', '35som', 'NoTwis', 'TUCK']", "Inward, 3.5 somersaults, no twist, tuck"),
    ("['Back', 'Dive', 'NoTwis', 'PIKE']", "Back, dive, no twist, pike"),
    ("['Forward', 'Dive', 'NoTwis', 'STR']", "Forward, dive, no twist, straight"),
    ("['Back', '15som', '05Twis', 'FREE']", "Back, 1.5 somersaults, 0.5 twists, free position"),
    ("['Reverse', '15som', '35Twis', 'FREE']", "Reverse, 1.5 somersaults, 3.5 twists, free position"),
    ("['Forward', '1som', 'NoTwis', 'PIKE']", "Forward, 1 somersault, no twist, pike"),
    ("['Forward', '25som', '1Twis', 'PIKE']", "Forward, 2.5 somersaults, 1 twist, pike"),
    ("['Back', '2som', '25Twis', 'FREE']", "Back, 2 somersaults, 2.5 twists, free position"),
    ("['Forward', '45som', 'NoTwis', 'TUCK']", "Forward, 4.5 somersaults, no twist, tuck"),
    ('["Back", "3som", "NoTwis", "TUCK"]', "Back, 3 somersaults, no twist, tuck"),  # the JSON form
    ("Back 3som NoTwis TUCK", "Back, 3 somersaults, no twist, tuck"),  # bare codes
])
def test_diving48_codes_are_spelled_out(raw, expected):
    assert readable_label(raw, 0) == expected


def test_every_diving48_class_reads_without_codes():
    assert len(DIVING48_LABELS) == 48 and len(set(DIVING48_LABELS)) == 48
    readable = [readable_label(raw, i) for i, raw in enumerate(DIVING48_LABELS)]
    for raw, text in zip(DIVING48_LABELS, readable, strict=True):
        assert not _LEFTOVER_CODE.search(text) and not _LEFTOVER_CAPS.search(text), (raw, text)
        assert len(text.split(", ")) == 4, (raw, text)
    assert len(set(readable)) == 48  # no two classes collapse into one name


def test_diving48_labels_are_the_vocabulary_as_python_lists():
    assert DIVING48_LABELS[35] == "['Inward', '35som', 'NoTwis', 'TUCK']"
    assert [tuple(json.loads(raw.replace("'", '"'))) for raw in DIVING48_LABELS] == list(DIVING48_VOCABULARY)


def test_unknown_dive_codes_are_kept_not_hidden():
    assert readable_dive(["Armstand", "Dive", "NoTwis", "WEIRD"]) == "Armstand, dive, no twist, WEIRD"


@pytest.mark.parametrize(("raw", "expected"), [
    ("Putting [something] on [something]", "Putting something on something"),
    ("Pretending to put [something] into [something]", "Pretending to put something into something"),
    ("[Something] falling like a rock", "Something falling like a rock"),
    ("[Something] being deflected from [something]", "Something being deflected from something"),
    ("Stacking [number of] [something]", "Stacking a number of something"),
    ("Pushing something from left to right", "Pushing something from left to right"),  # already plain
    ("  Closing   [something] ", "Closing something"),
])
def test_ssv2_placeholders_are_plain_words(raw, expected):
    assert readable_label(raw, 0) == expected


@pytest.mark.parametrize(("index", "raw"), sorted(SSV2_LABEL_SAMPLE.items()))
def test_real_ssv2_names_read_as_sentences(index, raw):
    text = readable_label(raw, index)
    words = raw.replace("[number of]", "a number of").replace("[", "").replace("]", "")
    assert text[0].isupper() and text.lower().split() == words.lower().split()


@pytest.mark.parametrize("raw", ["LABEL_7", "", "   ", None])
def test_unnamed_classes_say_so(raw):
    assert readable_label(raw, 7) == "class 7 (the checkpoint names no label)"


def test_a_plain_name_that_is_not_a_dive_stays_as_it_is():
    assert readable_label("Back of the room", 3) == "Back of the room"
    assert readable_label("[1, 2]", 3) == "1, 2"
