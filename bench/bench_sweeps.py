"""Benchmark the live toys' sweeps (every setting of a gesture in one batched pass) on full-size replicas.

    python -m bench.bench_sweeps                       # every part, a few positions each, extrapolated
    python -m bench.bench_sweeps --part mae_vs_jepa --full   # 6.2-6.3's whole sweep, its payload exactly

One part per concept (`PARTS`), each a function of the parsed options returning its figures:
- mae (6.1): the slider's 20 ratios for chelsea.jpg with each ViT-MAE, beside one ratio alone, and the payload.
- mae_vs_jepa (6.2-6.3): the sweep of a 4x4 block over V-JEPA 2's grid for the bundled example chelsea.jpg, at this
  device's frames: the device calls (targets, then `positions` positions a call, as the page grows it on a CPU),
  per position; the playback (each position's comparison read from the sweep, its close-ups and captions) and the
  payload the page receives (bytes of its sprite sheet and of its JSON). Without `--full` only the first calls run
  and the whole is extrapolated from them.
Random weights: speed and memory are real; the pictures are not, and MAE's random output packs worse than a real one.
"""

from __future__ import annotations

import argparse
import json
import time

from bench import common

MAE_VS_JEPA_NAMES = ["vjepa2-vitl", "vit-mae-base"]


def mae_vs_jepa(options) -> dict:
    common.use_full_size_replicas(MAE_VS_JEPA_NAMES)
    import checkpoints
    from demos import examples, images
    from demos.compute import block_sweep_work
    from demos.tabs import mae_vs_jepa_live

    for name in MAE_VS_JEPA_NAMES:
        checkpoints.load(name)
    image = images.load_image(next(p for p in examples.images() if p.endswith("chelsea.jpg")))
    asked = block_sweep_work.request(image, 4, 4)
    block_sweep_work.CPU_POSITIONS_PER_CALL = options.positions
    calls, sweep, started = [], None, time.perf_counter()
    for step in block_sweep_work.grow(asked, still_wanted=lambda: options.full or len(calls) < options.calls):
        sweep = step
        calls.append(time.perf_counter() - started)
        started = time.perf_counter()
    done = len(sweep.positions)
    start = time.perf_counter()
    payload = mae_vs_jepa_live.playback(asked.picture, sweep, {}).payload()
    playback_s = time.perf_counter() - start
    text_bytes = len(json.dumps({**payload, "sprite": None}).encode())
    total_bytes = len(json.dumps(payload).encode())
    scale = sweep.total / done
    later_calls = calls[1:] or calls
    per_position_s = sum(later_calls) / (len(later_calls) * options.positions)
    return {
        "device frames": asked.num_frames,
        "positions": f"{done} of {sweep.total}" + ("" if sweep.complete else " (the rest extrapolated)"),
        "first call (targets and the first positions) s": round(calls[0], 2),
        "per position s (later calls)": round(per_position_s, 3),
        "whole sweep s": round(sum(calls) if sweep.complete else calls[0] + per_position_s * (sweep.total
                                                                                            - options.positions), 1),
        "stages s (summed)": {k: round(v, 2) for k, v in sweep.seconds.items()},
        "playback s (whole, from the sweep)": round(playback_s * scale, 1),
        "payload bytes (whole)": round(total_bytes * scale),
        "of which sprite sheet bytes": round(payload["sprite_bytes"] * scale),
        "of which texts JSON bytes": round(text_bytes * scale),
        "peak RSS MB": round(common.peak_rss_mb()),
    }


MAE_NAMES = ["vit-mae-base", "vit-mae-large", "vit-mae-huge"]


def mae(options) -> dict:
    """6.1: the slider's 20 ratios for chelsea.jpg, per checkpoint: one ratio alone beside the whole sweep, and the
    payload the page receives."""
    common.use_full_size_replicas(MAE_NAMES)
    from demos import examples, images
    from demos.compute import mae as compute
    from demos.compute import mae_sweep
    from demos.tabs import mae as tab

    image = images.load_image(next(p for p in examples.images() if p.endswith("chelsea.jpg")))
    figures = {}
    for name in MAE_NAMES:
        compute.load(name)
        compute.reconstruct.plain(image, name, ratio=0.75, seed=0)  # warm
        one = common.median_s(common.time_calls(lambda name=name: compute.reconstruct.plain(
            image, name, ratio=0.75, seed=0), repeats=3, warmup=0))
        mae_sweep.SWEEPS.clear()
        start = time.perf_counter()
        swept, _ = mae_sweep.sweep(image, name, 0)
        sweep_s = time.perf_counter() - start
        start = time.perf_counter()
        payload = tab.playback(swept).payload()
        figures[name] = {"one ratio s": round(one, 3), "sweep of 20 s": round(sweep_s, 2),
                         "sweep / one": round(sweep_s / one, 1), "payload packed s": round(time.perf_counter() - start, 2),
                         "sprite MB": round(payload["sprite_bytes"] / 1e6, 2),
                         "JSON MB": round(len(json.dumps(payload).encode()) / 1e6, 2)}
    return figures


PARTS = {"mae": mae, "mae_vs_jepa": mae_vs_jepa}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=sorted(PARTS), action="append", help="the parts to run (default: all)")
    parser.add_argument("--full", action="store_true", help="the whole sweep, not the first calls extrapolated")
    parser.add_argument("--positions", type=int, default=8, help="positions a device call (a CPU's steps)")
    parser.add_argument("--calls", type=int, default=3, help="device calls before extrapolating (without --full)")
    options = parser.parse_args()
    for name in options.part or sorted(PARTS):
        print(f"== {name}", flush=True)
        for label, value in PARTS[name](options).items():
            print(f"{label:45} {value}")


if __name__ == "__main__":
    main()
