"""Whether the ZeroGPU app answered a request as the in-process app does (off ZeroGPU, on this CPU, the same tiny
weights in fp32): the numbers that say what was computed (scores, cosines, errors, the probes' labels), to float
tolerance; no timings, cache flags or devices. A computation on the packed-away resident model, or an answer to
another request, differs.

`planned_for(device)` makes the in-process app plan its actions as the ZeroGPU app plans them: for a GPU ("cuda": an
action ZeroGPU may run; the frames of a still image's clip, the probes' sampling) or for the Space's CPU ("cpu": an
action that fell back to it). `differences(api_name, ours, theirs)` says where two answers differ.
"""

import contextlib
import math
import os


@contextlib.contextmanager
def planned_for(device: str):
    """The in-process app plans for `device` ("cuda" or "cpu"), its models staying on this CPU, and answers afresh: not
    from a result cached under another plan (the result cache's keys are the requests)."""
    from demos import devices, results
    from demos.tabs import actions

    assert devices.device_and_dtype()[0].type == "cpu"  # decided before the plan changes: its models stay here
    before, kept = os.environ.get(devices.ENV_DEVICE), actions.RESULTS
    os.environ[devices.ENV_DEVICE] = device
    actions.RESULTS = results.ResultCache(actions.RESULT_CACHE_ENTRIES, actions.RESULT_CACHE_BYTES)
    try:
        yield
    finally:
        actions.RESULTS = kept
        if before is None:
            del os.environ[devices.ENV_DEVICE]
        else:
            os.environ[devices.ENV_DEVICE] = before


def agree(ours, theirs, where: str = "") -> list[str]:
    """Where two values differ: numbers beyond float tolerance (a last digit of a rounded one), anything else at all."""
    if isinstance(ours, dict) and isinstance(theirs, dict) and ours.keys() == theirs.keys():
        return [d for key in ours for d in agree(ours[key], theirs[key], f"{where}.{key}")]
    if isinstance(ours, list | tuple) and isinstance(theirs, list | tuple) and len(ours) == len(theirs):
        return [d for i, (a, b) in enumerate(zip(ours, theirs, strict=True)) for d in agree(a, b, f"{where}[{i}]")]
    numbers = (int, float)
    if isinstance(ours, numbers) and isinstance(theirs, numbers) and not isinstance(ours, bool):
        return [] if math.isclose(ours, theirs, rel_tol=1e-4, abs_tol=2e-5) else [f"{where}: {ours} != {theirs}"]
    return [] if ours == theirs else [f"{where}: {ours!r} != {theirs!r}"]


def _same(picked):
    """(our outputs, theirs) -> where the parts `picked` takes from each differ."""
    return lambda ours, theirs: agree(picked(ours), picked(theirs))


def _fields(*names):
    return lambda outputs: {name: outputs[-1][name] for name in names}


def _probe_tops(outputs) -> dict:
    return {name: head["top"] for name, head in outputs[-1]["heads"].items()}


def _same_grounded_answer(ours, theirs) -> list[str]:
    """/answer_question: the prompt the language model read (the probes' labels and probabilities, as text), and its
    answer unless ours ran out of its generation time first (this CPU computes slower in a ZeroGPU worker)."""
    (answer, _, prompt, numbers), (their_answer, _, their_prompt, their_numbers) = ours, theirs
    differences = agree(prompt, their_prompt, "prompt")
    if numbers["new_tokens"] < their_numbers["new_tokens"] and numbers["total_s"] >= numbers["max_time_s"]:
        return differences
    return differences + agree((answer, numbers["new_tokens"]), (their_answer, their_numbers["new_tokens"]), "answer")


_DIFFERENCES = {
    "/mae_reconstruct": _same(_fields("hidden_mse", "model_loss", "best_constant_mse", "image_mean_colour_mse",
                                      "hidden_patch_ids")),
    "/compare_pixels_embeddings": _same(_fields("cosine_per_patch", "mean_cosine", "baselines", "block_noise_mse",
                                                "mae_pixel_mse", "mae_pixel_mse_per_patch", "mae_baselines",
                                                "nearest_neighbour_ids")),
    "/noise_sweep": _same(_fields("mae_pixel_mse", "noise_mse", "target_cosine", "predictor_cosine")),
    "/tube_predict": _same(_fields("cosine", "l1", "mean_cosine")),
    "/classify_action": _same(_probe_tops),
    "/answer_question": _same_grounded_answer,
}
COMPARED = frozenset(_DIFFERENCES)  # the endpoints whose answers are compared: every one that computes


def differences(api_name: str, ours, theirs) -> list[str]:
    """Where two answers (all the outputs) of `api_name` to the same request differ."""
    return _DIFFERENCES[api_name](ours, theirs)
