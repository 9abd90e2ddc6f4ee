"""The 6.4 page's words: the summary of a result, the pictures' alt texts, the live tube's line."""

import numpy as np

from demos.compute import tube_sweep, tubes


def summary_markdown(result: tubes.TubeResult) -> str:
    n = result.numbers()
    tube = result.tube
    frames = tube.frames(result.layout.tubelet_size)
    whole_time = tube.first_tubelet == 0 and tube.last_tubelet == result.layout.tubelets - 1
    span = ("in every frame" if whole_time else
            f"in frames {frames.start}–{frames.stop - 1} (tubelets {tube.first_tubelet}–{tube.last_tubelet})")
    lines = [
        f"**Tube: {tube.height}×{tube.width} patches at row {tube.top}, column {tube.left}, hidden {span}** — "
        f"{n['num_hidden_tokens']} of {n['num_hidden_tokens'] + n['num_context_tokens']} tokens hidden; the "
        f"context encoder saw the other {n['num_context_tokens']} alone.",
        "",
        "| guess | mean cosine with the actual features |",
        "| --- | --- |",
    ]
    for name, value in n["mean_cosine"].items():
        lines.append(f"| {name} | {value:.3f} |")
    worst = int(np.argmax(result.l1[tubes.SERIES_PREDICTED]))
    lines += ["", f"Biggest surprise (prediction error, L1) at tubelet {list(tube.tubelets)[worst]}: "
                  f"{result.l1[tubes.SERIES_PREDICTED][worst]:.3f}."]
    if result.from_sweep:
        lines.append("Answered from this clip's sweep (every place of this tube, computed together): no model ran now.")
    elif n["target_cache_hit"]:
        lines.append("Full-clip targets came from the cache: only the context encoder and predictor ran.")
    notes = [*result.clip.notes, *result.notes]
    if notes:
        lines += ["", "**Notes:** " + " ".join(notes)]
    return "\n".join(lines)


def features_description(numbers: dict) -> list[str]:
    """What the features picture shows, in words (its alt text)."""
    tubelets, mean = len(numbers["tubelets"]), numbers["mean_cosine"][tubes.SERIES_PREDICTED]
    return [f"For each of the {tubelets} tubelets the tube hides: its pixels, then its actual and its predicted "
            f"features as colours (the more alike the colours, the better the guess; mean cosine {mean:.2f})."]


def still_description(result: tubes.TubeResult) -> str:
    tube, cosine = result.tube, result.cosine[tubes.SERIES_PREDICTED]
    return (f"Frame {tube.first_tubelet * result.layout.tubelet_size} of the clip with the {tube.height}×{tube.width} "
            f"tube at row {tube.top}, column {tube.left} shaded; beside it the tube's actual and predicted features "
            f"as colours, cosine {float(cosine[0]):+.2f}.")


def sweep_note(sweep: tube_sweep.TubeSweep) -> str:
    total, size = len(sweep.positions), f"{sweep.height}×{sweep.width}"
    if sweep.complete:
        return f"Live: all {total} places of this {size} tube. Drag it: the guess follows at once; release to play the clip."
    return (f"Getting live: {sweep.done} of {total} places of this {size} tube computed (nearest first); drag within "
            "them to see the guess at once.")
