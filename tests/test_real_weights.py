"""`python -m checks.real_weights` end to end on the tiny replicas, and its table and exit-code logic."""

import re

import pytest

from checks import real_weights
from demos import examples


@pytest.mark.slow  # every check of the command
def test_it_runs_end_to_end_on_the_replicas(tiny_hub, capsys):
    assert real_weights.main(["--random-weights"]) == 0
    out = capsys.readouterr().out
    for promise in ("6.1 vit-mae-base beats the best constant output", "6.1 vit-mae-huge", "bundled images", "bundled clips",
                    "with grain 24, the JEPA target moves little where MAE's error grows",
                    "surprise curve peaks", "encoder is bit-identical", "every label name reads as text",
                    "Diving48 top-1", "cites the probes' labels"):
        assert promise in out
    # 3 MAE, 3 predictor (images at 2 and 16 frames, clips), one 2 | 16 frames row per image, noise, surprise, 2 top-1,
    # LLM
    assert out.count(real_weights.NOT_APPLICABLE) == 10 + 1 + len(examples.images())
    # What does not need trained weights is checked on the replicas too: 2 shared encoders, 2 label formats.
    assert out.count("| PASS |") == 4 and "| FAIL |" not in out


def test_the_predictor_is_printed_fed_both_inputs_side_by_side(tiny_hub, capsys):
    """One row per bundled image: what the CPU's 2 frames cost against the 16 of V-JEPA 2's image evaluation, side
    by side in one cell (no `|` inside a cell: the table keeps its four columns)."""
    assert real_weights.main(["--random-weights", "--only", "jepa"]) == 0
    lines = capsys.readouterr().out.splitlines()
    for path in examples.images():
        name = path.split("/")[-1]
        row = next(line for line in lines if f"| 6.2-6.3 {name}: the predictor's mean cosine fed 2 / 16 frames" in line)
        cosines = r"\| [+-]\d\.\d{3} / [+-]\d\.\d{3} \(the CPU's input [+-]\d\.\d{3}\) \|"
        assert row.count("|") == 5 and re.search(cosines, row), row
    for frames in (2, 16):
        assert any(f"beats both baselines, bundled images, {frames} frames" in line for line in lines)
    assert any("beats both baselines, bundled clips" in line for line in lines)


def test_a_failing_promise_fails_the_command(tiny_hub, capsys, monkeypatch):
    monkeypatch.setattr(real_weights.heads, "readable_label", lambda raw, index: raw)  # brackets reach the page
    assert real_weights.main(["--random-weights", "--only", "probes"]) == 1
    out = capsys.readouterr().out
    assert out.count("| FAIL |") == 2 and "promises failed" in out


def test_judging_and_the_table():
    rows = [real_weights.Row("a", "1", "> 0", True), real_weights.Row("b", "0", "> 0", False),
            real_weights.Row("c", "x", "= x", False, needs_trained_weights=False)]
    judged = real_weights.judge([real_weights.Row(**vars(r)) for r in rows], random_weights=True)
    assert [r.passed for r in judged] == [None, None, False]
    assert [r.passed for r in real_weights.judge(rows, random_weights=False)] == [True, False, False]
    assert real_weights.table(judged).splitlines()[2] == f"| n/a | a | 1 | {real_weights.NOT_APPLICABLE} |"


def test_the_ball_vanishes_in_tubelet_4():
    """examples/make_videos.py: the ball is gone from frame 30 on; 16 frames with step 4 sample frames 0, 4, ...,
    so frame 32 (tubelet 4) is the first sampled frame without it."""
    assert real_weights.vanish_tubelet() == 4


@pytest.mark.parametrize("answer, label, cited", [
    ("It looks like putting something into something.", "Putting something into something", True),
    ("A back dive in pike position, no twist.", "Back, dive, no twist, pike", True),
    ("I cannot tell.", "Back, dive, no twist, pike", False),
])
def test_citing_a_label(answer, label, cited):
    assert real_weights.cites(answer, label) is cited
