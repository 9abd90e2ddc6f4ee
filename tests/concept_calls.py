"""Each concept's main endpoint, called through gradio_client on its example, and what every result must hold."""

import math
import os
from pathlib import Path

import numpy as np
from gradio_client import handle_file
from PIL import Image

import app

CONCEPTS = {concept.tab_id: concept for concept in app.CONCEPTS}


def _is_file(value) -> bool:
    return isinstance(value, str) and os.path.isfile(value)  # False for a markdown text, however long


def call_example(client, concept) -> tuple:
    """The concept's main endpoint on its example call (local files sent as uploads); its outputs."""
    args = [handle_file(arg) if _is_file(arg) else arg for arg in concept.example_call()]
    outputs = client.predict(*args, api_name=concept.endpoint)
    return outputs if isinstance(outputs, tuple) else (outputs,)


def _numbers_in(value):
    if isinstance(value, dict):
        for item in value.values():
            yield from _numbers_in(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _numbers_in(item)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        yield value


def check_result(outputs: tuple) -> dict:
    """Every picture is a PNG of RGB pixels, every video a non-empty MP4, some text says what happened, and the
    numbers (the last output, a dict) are there and finite. Returns the numbers."""
    files = [Path(out) for out in outputs if _is_file(out)]
    for file in files:
        assert file.suffix in (".png", ".mp4"), file
        if file.suffix == ".png":
            picture = np.asarray(Image.open(file))
            assert picture.ndim == 3 and picture.shape[2] == 3 and min(picture.shape[:2]) > 0, (file, picture.shape)
        else:
            assert file.stat().st_size > 0, file
    texts = [out for out in outputs if isinstance(out, str) and not _is_file(out)]
    assert any(text.strip() for text in texts), outputs
    numbers = outputs[-1]
    assert isinstance(numbers, dict) and numbers, outputs
    values = list(_numbers_in(outputs))
    assert values and all(math.isfinite(value) for value in values), numbers
    return numbers
