"""Calls a client other than gradio_client makes: each concept endpoint with only the parameters it needs, and a bad
value of each kind of parameter; an endpoint that has no call written here is called as its concept calls it.
Shared by the JS client's test (test_js_client.py) and plain HTTP's (test_http_api.py); MCP's are in test_mcp.py.

In `data`, `file(path)` stands for a file the client uploads and `NAN` for the number NaN (each test turns them into
what its client sends). The test replicas' V-JEPA 2 grid is 8x8 patches, so the blocks given fit it.
"""

import os

import app
from demos import examples

IMAGE = str(examples.IMAGES_DIR / "chelsea.jpg")
VIDEO = str(examples.VIDEOS_DIR / "ball_behind_wall.mp4")
NAN = {"$number": "NaN"}


def file(path: str) -> dict:
    return {"$file": path}


# Answered: every parameter left out is its default.
_WRITTEN = {
    "mae_reconstruct, the image alone": ("/mae_reconstruct", [file(IMAGE)]),
    "compare_pixels_embeddings, image and block": ("/compare_pixels_embeddings", [file(IMAGE), 2, 2, 2, 2]),
    "compare_pixels_embeddings, null noise": ("/compare_pixels_embeddings", [file(IMAGE), 2, 2, 2, 2, None, None, None]),
    "noise_sweep, image, block and noise": ("/noise_sweep", [file(IMAGE), 2, 2, 2, 2, "grain"]),
    "tube_preview, the clip alone": ("/tube_preview", [file(VIDEO)]),
    "tube_predict, the clip alone": ("/tube_predict", [file(VIDEO)]),
    "tube_predict, a span given last to first": ("/tube_predict", [file(VIDEO), 0, 8, 4, 0, 0, 0, 2, 2, 3, 1]),
    "classify_action, the clip alone": ("/classify_action", [file(VIDEO)]),
    "answer_question, no sampling": ("/answer_question", [file(VIDEO), 0, "What happens?"]),
}
# Every documented endpoint, as app.py's CONCEPTS name them.
ENDPOINTS = tuple(endpoint for concept in app.CONCEPTS for endpoint in concept.endpoints)


def concept_calls() -> dict:
    """Each concept endpoint's call on bundled example 0 as its concept gives it (`Concept.calls`, what
    checks.deployed calls), keyed as ANSWERED's cases: an endpoint is called by every client without a line here."""
    return {f"{endpoint.removeprefix('/')}, as its concept calls it": (
        endpoint, [file(arg) if isinstance(arg, str) and os.path.isfile(arg) else arg for arg in args])
        for concept in app.CONCEPTS for endpoint, args in concept.calls(0).items()}


_CALLED = {endpoint for endpoint, _ in _WRITTEN.values()}
ANSWERED = {**_WRITTEN, **{case: call for case, call in concept_calls().items() if call[0] not in _CALLED}}

# Refused: (endpoint, data, what the message must contain: the parameter's name, as the message puts it).
REFUSED = {
    "null image": ("/mae_reconstruct", [None], "for image_path"),
    "null clip": ("/classify_action", [None], "for video"),
    "a word for a number": ("/compare_pixels_embeddings", [file(IMAGE), "six", 2, 2, 2], 'top ("Top row") must be'),
    "a word for a start": ("/tube_predict", [file(VIDEO), "soon"], 'start_s ("Start (s)") must be'),
    "a ratio out of range": ("/mae_reconstruct", [file(IMAGE), 2], "mask_ratio must be"),
    "a negative seed": ("/mae_reconstruct", [file(IMAGE), 0.5, -1], "mask_seed must be a whole number from 0 to 2147483647"),
    "a true for a number": ("/tube_predict", [file(VIDEO), 0, True], 'num_frames ("Frames") must be'),
    "an unknown checkpoint": ("/mae_reconstruct", [file(IMAGE), 0.5, 0, "vit-mae-tiny"], "checkpoint must be one of"),
    "an unknown sampling": ("/classify_action", [file(VIDEO), 0, "sometimes"], 'sampling ("Frame sampling") must be'),
    "a number for a question": ("/answer_question", [file(VIDEO), 0, 5], 'question ("Question for the language model") must'),
    "a picture where a clip belongs": ("/tube_predict", [file(IMAGE)], "video: This file is a still image"),
    "a picture for the probes": ("/classify_action", [file(IMAGE)], "video: This file is a still image"),
    "a word where a file belongs": ("/mae_reconstruct", ["chelsea.jpg"], 'image_path ("Image") must be a file'),
    "a path no one uploaded": ("/tube_predict", [{"path": VIDEO, "meta": {"_type": "gradio.FileData"}}],
                               "video must be a file uploaded to this app"),
}

GENERIC = "An error occurred"  # gradio's word for an exception it masks: no call may end with it
