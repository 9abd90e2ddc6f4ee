"""Benchmark 6.2-6.3: `/compare_pixels_embeddings` and `/noise_sweep` on full-size replicas of V-JEPA 2 ViT-L and
ViT-MAE base.

    python -m bench.bench_mae_vs_jepa                  # the app's dtype policy and fp32, side by side
    python -m bench.bench_mae_vs_jepa --repeats 10 --dtypes float32

Each dtype runs in its own process so its peak memory is its own. On a 640x480 image with a 4x4 block:
- first click: a new image, so the full-image target encoder runs, then the context encoder, the
  predictor, MAE, the scores and the pictures (models already loaded; the cache is cleared each time);
- later click: the block moved on the same image; the target features come from the cache;
- noise sweep (`/noise_sweep`) at the page's default film grain, for 2 to 4 levels (the clean picture counts):
  on a picture just picked (every level's targets computed) and with the block moved (every level's targets
  cached); and what the page runs when the block moves with that noise on: the comparison at the learner's
  level, then the sweep, which finds that level's work in the block cache.
Prints median (and min) latency of `demos.compute.mae_vs_jepa.compare` and `demos.compute.noise_sweep.sweep`,
their stages, load time and peak RSS. Targets: <= 5 s first click, <= 1.5 s later click, on the 2-core CPU.
Random weights: speed and memory are real, the predictions are meaningless.
"""

from __future__ import annotations

import statistics

from bench import common

NAMES = ["vjepa2-vitl", "vit-mae-base"]
SWEEP_LEVELS = (2, 3, 4)


def measure(repeats: int) -> dict:
    common.use_full_size_replicas(NAMES)
    import numpy as np
    import torch

    import checkpoints
    from demos import devices, jepa
    from demos.compute import mae_vs_jepa

    image = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    load_s = sum(checkpoints.load(name).load_seconds for name in NAMES)
    grid = jepa.TokenLayout.of(jepa.load().model.config, 1).rows  # 16 on the published 256 px
    positions = [(r, c) for r in range(0, grid - 4, 3) for c in range(0, grid - 4, 3)]
    centre = (grid // 2 - 2, grid // 2 - 2)  # a 4x4 block in the middle: (6, 6) on V-JEPA 2's 16x16 grid

    def first_click():
        mae_vs_jepa.TARGET_CACHE.clear()
        mae_vs_jepa.BLOCK_CACHE.clear()
        return mae_vs_jepa.compare(image, *centre, 4, 4)

    moves = iter(positions * (repeats + 2))

    def later_click():
        return mae_vs_jepa.compare(image, *next(moves), 4, 4)

    first = common.time_calls(first_click, repeats, warmup=1)
    mae_vs_jepa.compare(image, *centre, 4, 4)  # fill the cache
    later = common.time_calls(later_click, repeats, warmup=1)
    stages = {"first": first_click().stats()["seconds"], "later": later_click().stats()["seconds"]}

    from demos.compute import noise_sweep
    from demos.noise import DEFAULT_GRAIN_LEVEL, GRAIN, Noise

    grain = Noise(GRAIN, DEFAULT_GRAIN_LEVEL)
    sweeps = {}
    for levels in SWEEP_LEVELS:
        def picked(levels=levels):
            mae_vs_jepa.TARGET_CACHE.clear()
            mae_vs_jepa.BLOCK_CACHE.clear()
            return noise_sweep.sweep(image, *centre, 4, 4, grain, levels)

        def moved(levels=levels):
            mae_vs_jepa.BLOCK_CACHE.clear()
            return noise_sweep.sweep(image, *next(moves), 4, 4, grain, levels)

        def page_moved(levels=levels):
            block = (*next(moves), 4, 4)
            mae_vs_jepa.BLOCK_CACHE.clear()  # only the comparison just made may be found there
            mae_vs_jepa.compare(image, *block, noise=grain)
            return noise_sweep.sweep(image, *block, grain, levels)

        just_picked = common.time_calls(picked, repeats, warmup=0)
        block_moved = common.time_calls(moved, repeats, warmup=0)  # every level's targets cached by `picked`
        page = common.time_calls(page_moved, repeats, warmup=0)
        sweeps[levels] = {"picked_median_s": round(statistics.median(just_picked), 3),
                          "moved_median_s": round(statistics.median(block_moved), 3),
                          "page_moved_median_s": round(statistics.median(page), 3),
                          "moved_stages": moved().stats()["seconds"]}
    return {
        "dtype": str(devices.device_and_dtype()[1]).replace("torch.", ""),
        "threads": torch.get_num_threads(), "load_s": round(load_s, 1),
        "first_median_s": round(statistics.median(first), 3), "first_min_s": round(min(first), 3),
        "later_median_s": round(statistics.median(later), 3), "later_min_s": round(min(later), 3),
        "stages": stages, "sweeps": sweeps, "peak_rss_mb": round(common.peak_rss_mb()),
    }


def main() -> None:
    rows = common.dtype_runs("bench.bench_mae_vs_jepa", __doc__, measure, default_repeats=5)
    if rows is None:
        return
    print(f"{'dtype':9} {'first click':>18} {'later click':>18} {'load':>6} {'peak RSS':>9}   stages of a later click")
    for row in rows:
        stages = ", ".join(f"{k} {v:.3f}" for k, v in row["stages"]["later"].items() if v)
        print(f"{row['dtype']:9} {row['first_median_s']:>7.3f}s (min {row['first_min_s']:.3f}) "
              f"{row['later_median_s']:>7.3f}s (min {row['later_min_s']:.3f}) {row['load_s']:>5.1f}s "
              f"{row['peak_rss_mb']:>7}MB   {stages}", flush=True)
        print(f"{'':9} first click stages: " + ", ".join(f"{k} {v:.3f}" for k, v in row["stages"]["first"].items()),
              flush=True)
        for levels, sweep in row["sweeps"].items():
            stages = ", ".join(f"{k} {v:.3f}" for k, v in sweep["moved_stages"].items() if v)
            print(f"{'':9} noise sweep, {levels} levels: picture just picked {sweep['picked_median_s']:.3f}s, "
                  f"block moved {sweep['moved_median_s']:.3f}s ({stages}); on the page, block moved (comparison, "
                  f"then sweep) {sweep['page_moved_median_s']:.3f}s", flush=True)

if __name__ == "__main__":
    main()
