"""`python -m checks.deployed`: the acceptance check a course author runs after deploying, on the app in-process.

The tiny random-weight replicas are served here as if they were the real checkpoints (no offline-demo banner), so
the promises are judged, and break: the command must say so and exit non-zero. The offline demo (where they are
not judged) is in test_offline_demo.py; the app under ZeroGPU's imitation, with a checkpoint missing, in
test_zerogpu_app.py.
"""

import dataclasses
import os

import pytest

import app
from checks import deployed
from checks.real_weights import Row
from demos import examples


def test_every_endpoint_gets_a_row_per_call_and_random_weights_served_as_real_break_the_promises(running_app, capsys):
    assert deployed.main([running_app.local_url]) == 1
    out = capsys.readouterr().out
    for concept in app.CONCEPTS:
        assert f"| PASS | page /{concept.path} " in out
        for endpoint in concept.endpoints:
            assert f"| {endpoint} | 1 | " in out and f"| {endpoint} | 2 | " in out
    assert "FAIL:" not in out  # every call answered
    assert "| FAIL | 6.1 vit-mae-base: error on the hidden patches" in out  # a promise broken, measured...
    assert "failed:\n- promise: 6.1 vit-mae-base" in out.replace(" failed:\n", "failed:\n")  # ...and named at the end
    assert "top-1 on cup_covers_ball.mp4" in out  # printed, not judged


def test_an_endpoint_that_fails_is_named_with_its_error(running_app):
    space = deployed.Space(running_app.local_url)
    mae = next(concept for concept in app.CONCEPTS if concept.endpoint == "/mae_reconstruct")
    too_high = dataclasses.replace(mae, calls=lambda i: {"/mae_reconstruct": (examples.image(i), 2.0, 0, "vit-mae-base")})
    calls = deployed.check_endpoints(space, [too_high])
    assert len(calls) == 2 and all("0.95" in c.error for c in calls)
    assert "| /mae_reconstruct | 1 | " in deployed.calls_table(calls) and "FAIL:" in deployed.calls_table(calls)


@pytest.mark.parametrize("concept", app.CONCEPTS, ids=lambda concept: concept.tab_id)
def test_each_concept_calls_its_endpoints_on_two_different_examples(concept):
    """What the check calls comes from the concepts: every endpoint, on examples 0 and 1 (different files, so the
    shared result cache cannot answer the second call), its files bundled ones."""
    first, second = concept.calls(0), concept.calls(1)
    assert tuple(first) == tuple(second) == concept.endpoints and concept.endpoints[0] == concept.endpoint
    for endpoint in concept.endpoints:
        files = [(a, b) for a, b in zip(first[endpoint], second[endpoint], strict=True) if os.path.isfile(str(a))]
        assert files and all(a != b for a, b in files), endpoint
        assert all(a in examples.images() + examples.videos() for a, _ in files), endpoint


def test_blocks_span_the_grid_corner_to_corner():
    assert deployed.block_positions(16) == [(top, left, 4, 4) for top in (0, 6, 12) for left in (0, 6, 12)]
    assert deployed.block_positions(8)[-1] == (6, 6, 2, 2)


def test_the_ran_on_column_says_device_what_was_asked_and_why():
    runs = [{"function": "tubes.encode_and_predict", "device": "gpu", "seconds": 0.41, "asked": 7, "why": "",
             "fallback": False},
            {"function": "mae.reconstruct", "device": "cpu", "seconds": 1.2, "why": "the quota is used up",
             "fallback": True}]
    assert deployed._where(runs) == ("tubes.encode_and_predict: gpu 0.41 s (asked 7 s); mae.reconstruct: cpu 1.20 s "
                                     "after a refusal, the quota is used up")
    assert isinstance(Row("a", "b", "c", None), Row)
