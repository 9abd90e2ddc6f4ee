"""Is a deployed Space ready for a class? `python -m checks.deployed OWNER/NAME [--token TOKEN]`.

TARGET is a Space id or a URL (the Space, `python app.py` on this machine, the offline demo). Works as a course
author would after deploying, through gradio_client and an HTTP GET per concept page:

- pages: each concept page answers and opens with its example;
- endpoints: each concept endpoint runs on the bundled examples, twice in a row (two examples, so the shared result
  cache cannot answer the second; each call as its concept gives it, `Concept.calls`), with its wall time and where
  it ran (`ran_on`: on ZeroGPU the device, why, and the seconds a GPU call asked against the seconds it held);
- promises: the chapter's promises on the Space's own weights, each with its measurement and threshold (those of
  `checks.real_weights`, on the bundled examples). On the offline demo (random weights) they are not judged.

Exits 1 when a page or an endpoint fails or a promise breaks, naming it; 0 otherwise.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from checks import real_weights
from checks.real_weights import Row
from demos import examples

OFFLINE_DEMO_MARK = "offline-demo-banner"  # the banner's elem_id: the Space serves random weights
MAE_RATIO = 0.75
BLOCK_GRID = 3  # the 6.2-6.3 promise averages a 3x3 grid of block positions on each image
CALL_TIMEOUT_S = 600


@dataclass
class Call:
    """One call of an endpoint: its wall time and where its work ran, or its error."""

    endpoint: str
    number: int
    seconds: float
    ran_on: list[dict] = field(default_factory=list)
    from_result_cache: bool = False
    error: str = ""


class Space:
    """The deployed app, as a course author reaches it."""

    def __init__(self, target: str, token: str | None = None):
        from gradio_client import Client

        self.client = Client(target, token=token, verbose=False)
        self.url = self.client.src.rstrip("/") + "/"
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}

    def page(self, path: str) -> httpx.Response:
        return httpx.get(self.url + path, headers=self.headers, timeout=60, follow_redirects=True)

    def call(self, endpoint: str, *args):
        """The endpoint's outputs (a tuple; its numbers last), local files sent as uploads."""
        from gradio_client import handle_file

        args = [handle_file(arg) if isinstance(arg, str) and Path(arg).is_file() else arg for arg in args]
        outputs = self.client.submit(*args, api_name=endpoint).result(timeout=CALL_TIMEOUT_S)
        return outputs if isinstance(outputs, tuple) else (outputs,)

    def numbers(self, endpoint: str, *args) -> dict:
        return self.call(endpoint, *args)[-1]


def _concepts():
    import app  # the concepts' pages, examples and endpoints, as the Space builds them

    return app.CONCEPTS


def check_pages(space: Space, concepts) -> tuple[list[Row], bool]:
    """Each concept page answers and names its example; and whether the Space serves random weights."""
    rows, random_weights = [], False
    for concept in concepts:
        example = Path(concept.example_call()[0]).name
        try:
            response = space.page(concept.path)
            random_weights |= OFFLINE_DEMO_MARK in response.text
            ok = response.status_code == 200 and example in response.text
            measured = f"HTTP {response.status_code}" + ("" if example in response.text else f", no {example}")
        except httpx.HTTPError as error:
            ok, measured = False, f"{type(error).__name__}: {error}"
        rows.append(Row(f"page /{concept.path} ({concept.title}) opens with {example}", measured, "HTTP 200 and "
                        "its example", ok, needs_trained_weights=False))
    return rows, random_weights


def check_endpoints(space: Space, concepts) -> list[Call]:
    """Each concept endpoint twice, on bundled examples 0 and 1, as its concept calls it (`Concept.calls`)."""
    calls = []
    for concept in concepts:
        for endpoint in concept.endpoints:
            for number in (1, 2):
                calls.append(_call(space, endpoint, number, concept.calls(number - 1)[endpoint]))
    return calls


def _call(space: Space, endpoint: str, number: int, args: tuple) -> Call:
    started = time.perf_counter()
    try:
        numbers = space.numbers(endpoint, *args)
        numbers = numbers if isinstance(numbers, dict) else {}
        return Call(endpoint, number, time.perf_counter() - started, numbers.get("ran_on", []),
                    bool(numbers.get("from_result_cache")))
    except Exception as error:  # noqa: BLE001 - every failure is a finding, named in the report
        return Call(endpoint, number, time.perf_counter() - started, error=_message(error))


def _message(error: Exception) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def _where(runs: list[dict]) -> str:
    """`ran_on` in a few words: device and seconds, what a GPU call asked, why it ran there."""
    parts = []
    for run in runs:
        part = f"{run['function']}: {run['device']} {run['seconds']:.2f} s"
        if run.get("asked"):
            part += f" (asked {run['asked']} s)"
        if run.get("fallback"):
            part += " after a refusal"
        if run.get("why"):
            part += f", {run['why']}"
        parts.append(part)
    return "; ".join(parts) or "not reported (not on ZeroGPU)"


def calls_table(calls: list[Call]) -> str:
    lines = ["| endpoint | call | wall s | ran on | result |", "|---|---|---|---|---|"]
    for c in calls:
        result = f"FAIL: {c.error}" if c.error else ("shared result" if c.from_result_cache else "ok")
        lines.append(f"| {c.endpoint} | {c.number} | {c.seconds:.2f} | {'' if c.error else _where(c.ran_on)} | {result} |")
    return "\n".join(lines)


# The promises, through the endpoints. Each returns its rows; a failing call becomes a failing row that names it.

def mae_promise(space: Space) -> list[Row]:
    rows = []
    for name in ("vit-mae-base", "vit-mae-large", "vit-mae-huge"):
        scores = [space.numbers("/mae_reconstruct", path, MAE_RATIO, 0, name) for path in examples.images()]
        wins = sum(n["hidden_mse"] < n["best_constant_mse"] for n in scores)
        worst = max(scores, key=lambda n: n["hidden_mse"] / max(n["best_constant_mse"], 1e-12))
        rows.append(Row(f"6.1 {name}: error on the hidden patches (75 %) below the best constant colour's, every "
                        "bundled image", f"{wins}/{len(scores)}; worst {worst['hidden_mse']:.4f} vs "
                        f"{worst['best_constant_mse']:.4f}", "all images", wins == len(scores)))
    return rows


def block_positions(grid: int) -> list[tuple[int, int, int, int]]:
    """A 3x3 grid of blocks, a quarter of the side each, from corner to corner of a `grid` x `grid` patch grid."""
    side = max(1, grid // 4)
    steps = [round(k * (grid - side) / (BLOCK_GRID - 1)) for k in range(BLOCK_GRID)]
    return [(top, left, side, side) for top in steps for left in steps]


def jepa_grid(space: Space) -> int:
    """The side of the Space's V-JEPA 2 patch grid (16 for the published checkpoints)."""
    return space.numbers("/compare_pixels_embeddings", examples.image(0), 1, 1, 2, 2)["grid"][0]


def embedding_promise(space: Space, grid: int) -> list[Row]:
    margins = []
    for path in examples.images():
        scores = [space.numbers("/compare_pixels_embeddings", path, *block) for block in block_positions(grid)]
        predicted = statistics.mean(n["mean_cosine"] for n in scores)
        baselines = {name: statistics.mean(n["baselines"][name] for n in scores) for name in scores[0]["baselines"]}
        margins.append(predicted - max(baselines.values()))
    wins = sum(margin > 0 for margin in margins)
    return [Row(f"6.2-6.3 predictor's mean cosine above both baselines, averaged over {BLOCK_GRID}x{BLOCK_GRID} block "
                "positions, every bundled image", f"{wins}/{len(margins)}; smallest margin {min(margins):+.3f}",
                "all images", wins == len(margins))]


def noise_promise(space: Space, grid: int) -> list[Row]:
    block = real_weights.scaled(real_weights.IMAGE_BLOCK, grid)
    measured = []
    for path in examples.images():
        n = space.numbers("/noise_sweep", path, *block, real_weights.GRAIN.kind, real_weights.GRAIN.level, 10, 2)
        measured.append((n["target_cosine"][-1], n["mae_pixel_mse"][-1] / max(n["mae_pixel_mse"][0], 1e-12)))
    holds = sum(c >= real_weights.TARGET_STEADY_COSINE and g >= real_weights.MAE_ERROR_GROWTH for c, g in measured)
    return [Row(f"6.2-6.3 with {real_weights.GRAIN.label}, the JEPA target moves little where MAE's error grows, "
                "every bundled image", f"{holds}/{len(measured)}; target cosine min {min(c for c, _ in measured):.3f}; "
                f"MAE's error x{min(g for _, g in measured):.2f} at least",
                f"cosine >= {real_weights.TARGET_STEADY_COSINE} and MAE's error x{real_weights.MAE_ERROR_GROWTH} or more",
                holds == len(measured))]


def tube_promise(space: Space, grid: int) -> list[Row]:
    tube = real_weights.scaled(real_weights.CLIP_TUBE[:4], grid)
    first, last = real_weights.CLIP_TUBE[4:]
    margins = []
    for path in examples.videos():
        cosine = space.numbers("/tube_predict", path, 0.0, 16, 4, 0, *tube, first, last)["mean_cosine"]
        margins.append(cosine["predictor"] - cosine["mean of visible tokens"])
    wins = sum(margin > 0 for margin in margins)
    return [Row("6.4 predictor's mean cosine above the mean of the visible tokens, every bundled clip",
                f"{wins}/{len(margins)}; smallest margin {min(margins):+.3f}", "all clips", wins == len(margins))]


def probe_tops(space: Space) -> list[Row]:
    rows = []
    for path in examples.videos():
        for head in space.numbers("/classify_action", path, 0.0, "auto")["heads"].values():
            top = head["top"][0]
            rows.append(Row(f"6.5 {head['title']} top-1 on {Path(path).name}", f"{top['label']} ({top['probability']:.1%})",
                            "printed, not judged: the clips are rendered", None, needs_trained_weights=False))
    return rows


PROMISES = ("6.1", "6.2-6.3", "6.2-6.3 noise", "6.4", "6.5")


def check_promises(space: Space, only: tuple[str, ...] = PROMISES) -> list[Row]:
    """The promises named in `only`, through the endpoints; a failing call fails its promise, named."""
    rows, grid = [], None
    if {"6.2-6.3", "6.2-6.3 noise", "6.4"} & set(only):
        try:
            grid = jepa_grid(space)
        except Exception as error:  # noqa: BLE001
            rows.append(Row("6.2-6.4 the V-JEPA 2 grid", f"/compare_pixels_embeddings failed: {_message(error)}",
                            "an answer", False, needs_trained_weights=False))
    checks = {"6.1": (lambda: mae_promise(space), "/mae_reconstruct"),
              "6.2-6.3": (lambda: embedding_promise(space, grid), "/compare_pixels_embeddings"),
              "6.2-6.3 noise": (lambda: noise_promise(space, grid), "/noise_sweep"),
              "6.4": (lambda: tube_promise(space, grid), "/tube_predict"),
              "6.5": (lambda: probe_tops(space), "/classify_action")}
    for label in only:
        check, endpoint = checks[label]
        if grid is None and endpoint not in ("/mae_reconstruct", "/classify_action"):
            continue  # the grid's row says why
        try:
            rows += check()
        except Exception as error:  # noqa: BLE001 - a failing call fails its promise, named
            rows.append(Row(f"{label} could not be measured", f"{endpoint} failed: {_message(error)}", "an answer",
                            False, needs_trained_weights=False))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", help="a Space id (OWNER/NAME) or the app's URL")
    parser.add_argument("--token", help="a Hugging Face token: a private Space, and GPU quota of your own")
    args = parser.parse_args(argv)
    try:
        space = Space(args.target, args.token)
    except Exception as error:  # noqa: BLE001 - the first thing a course author needs to know
        print(f"Could not reach {args.target}: {_message(error)}", file=sys.stderr)
        return 1
    concepts = _concepts()
    print(f"Checking {space.url}\n\nPages")
    pages, random_weights = check_pages(space, concepts)
    print(real_weights.table(pages))
    calls = check_endpoints(space, concepts)
    print("\nEndpoints, each twice in a row\n" + calls_table(calls))
    promises = check_promises(space)
    real_weights.judge(promises, random_weights)
    print("\nPromises" + (" (the Space serves random weights: the offline demo)" if random_weights else ""))
    print(real_weights.table(promises))
    failures = ([f"page: {r.promise}: {r.measured}" for r in pages if r.passed is False]
                + [f"endpoint {c.endpoint} (call {c.number}): {c.error}" for c in calls if c.error]
                + [f"promise: {r.promise}: {r.measured}" for r in promises if r.passed is False])
    if failures:
        print(f"\n{len(failures)} failed:\n" + "\n".join(f"- {failure}" for failure in failures))
        return 1
    print("\nEvery page and endpoint answered" + ("; the promises were not judged (random weights)." if random_weights
                                                  else ", and every promise holds."))
    return 0


if __name__ == "__main__":
    sys.exit(main())
