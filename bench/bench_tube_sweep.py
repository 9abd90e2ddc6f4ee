"""Benchmark 6.4's sweep: every place of the tab's tube on its bundled example, on the full-size ViT-L replica.

    python -m bench.bench_tube_sweep                   # this device's frames and the app's dtype
    python -m bench.bench_tube_sweep --budget-s 120    # stop after about 120 s of sweeping; the rest is extrapolated
    PDR_BENCH_SIZE=tiny python -m bench.bench_tube_sweep   # the code on tiny replicas, no figures

Prints the targets pass, each chunk (places, seconds), the time per place, the whole sweep's time (measured, or
extrapolated from the places done), one click's warm pass for comparison, and the page's payload (the sprite of
stills and the summaries) for the places done, per place and extrapolated to all. Random weights: speed and
memory only; the stills' colours are noisier than real weights' would be, so the sprite compresses less.
"""

from __future__ import annotations

import argparse
import json
import time

from bench import common

CHECKPOINT = "vjepa2-vitl"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget-s", type=float, default=float("inf"), help="stop sweeping after about this long")
    args = parser.parse_args()
    common.use_full_size_replicas([CHECKPOINT])
    import torch

    from demos import devices, jepa
    from demos.compute import tube_clips, tube_sweep, tubes
    from demos.tabs import tubes as tab

    loaded = jepa.load()
    video, start_s, frames, step, fps, top, left, height, width, first, last = tab.example_call()
    clip = tube_clips.load_clip(video, start_s=start_s, num_frames=frames, frame_step=step, sample_fps=fps,
                                size=loaded.model.config.crop_size)
    start = time.perf_counter()
    tubes.predict_tube(clip, top, left, height, width, first, last)  # the click: targets cached, kernels warm
    click_cold = time.perf_counter() - start
    start = time.perf_counter()
    tubes.predict_tube(clip, top, left, height, width, first, last)
    click_warm = time.perf_counter() - start

    chunks, drawn, sweep, began = [], {}, None, time.perf_counter()
    last_step = began
    for sweep, _ in tube_sweep.stream_sweep(clip, top, left, height, width, first, last):
        now = time.perf_counter()
        chunks.append((sweep.done, round(now - last_step, 2)))
        print(f"{sweep.done:4d} of {len(sweep.positions)} places after {now - began:7.1f} s", flush=True)
        last_step = now
        if now - began > args.budget_s:
            break
    swept = time.perf_counter() - began
    total = len(sweep.positions)
    start = time.perf_counter()
    payload = tab.playback(sweep, clip, drawn).payload()
    playback_s = time.perf_counter() - start
    texts = len(json.dumps(payload["texts"])) + len(json.dumps(payload["alts"]))
    per_place = (payload["sprite_bytes"] * 4 / 3 + texts) / sweep.done  # the sprite travels as base64
    print(json.dumps({
        "device": str(devices.device_and_dtype()[0]), "dtype": str(devices.device_and_dtype()[1]).replace("torch.", ""),
        "threads": torch.get_num_threads(), "frames": clip.num_frames, "tube": [height, width], "places": total,
        "click_cold_s": round(click_cold, 2), "click_warm_s": round(click_warm, 2),
        "places_done": sweep.done, "sweep_s": round(swept, 1), "per_place_s": round(swept / sweep.done, 3),
        "whole_sweep_s": round(swept / sweep.done * total, 1), "chunks": chunks,
        "playback_s": round(playback_s, 2), "sprite_bytes": payload["sprite_bytes"], "text_bytes": texts,
        "payload_bytes_per_place": round(per_place), "payload_bytes_all_places": round(per_place * total),
        "peak_rss_mb": round(common.peak_rss_mb()),
    }, indent=1))


if __name__ == "__main__":
    main()
