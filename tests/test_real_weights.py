"""`python -m checks.real_weights` end to end on the tiny replicas, and its table and exit-code logic."""

import pytest

from checks import real_weights


@pytest.mark.slow  # every check of the command
def test_it_runs_end_to_end_on_the_replicas(tiny_hub, capsys):
    assert real_weights.main(["--random-weights"]) == 0
    out = capsys.readouterr().out
    for promise in ("6.1 vit-mae-base beats the best constant output", "6.1 vit-mae-huge", "bundled images", "bundled clips",
                    "with grain 24, the JEPA target moves little where MAE's error grows",
                    "surprise curve peaks", "encoder is bit-identical", "every label name reads as text",
                    "Diving48 top-1", "cites the probes' labels"):
        assert promise in out
    assert out.count(real_weights.NOT_APPLICABLE) == 10  # 3 MAE, 2 predictor, noise, surprise, 2 top-1, LLM
    # What does not need trained weights is checked on the replicas too: 2 shared encoders, 2 label formats.
    assert out.count("| PASS |") == 4 and "| FAIL |" not in out


def test_a_failing_promise_fails_the_command(tiny_hub, capsys, monkeypatch):
    monkeypatch.setattr(real_weights.labels, "readable_label", lambda raw, index: raw)  # brackets reach the page
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
