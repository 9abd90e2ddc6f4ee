"""Benchmark 6.1: one `/mae_reconstruct` computation on full-size ViT-MAE replicas.

    python -m bench.bench_mae                 # base, large, huge; default dtype policy and fp32
    python -m bench.bench_mae --only vit-mae-base --repeats 20

Each (checkpoint, dtype) runs in its own process so peak memory is its own. Prints the median latency
of `demos.compute.mae.reconstruct` (preprocessing, encoder, decoder, unpatchify, error map, images) on a
512x512 image at mask ratio 0.75, and the process's peak resident memory. Target:
<= 0.3 s per call for base on the 2-core CPU.
"""

from __future__ import annotations

from bench import common

CHECKPOINTS = ["vit-mae-base", "vit-mae-large", "vit-mae-huge"]


def measure_one(repeats: int, name: str) -> dict:
    common.use_full_size_replicas([name])
    import numpy as np
    import torch

    import checkpoints
    from demos import devices
    from demos.compute import mae

    image = np.random.default_rng(0).integers(0, 256, (512, 512, 3), dtype=np.uint8)
    load = checkpoints.load(name)
    times = common.time_calls(lambda: mae.reconstruct(image, name, ratio=0.75, seed=0), repeats, warmup=2)
    return {"checkpoint": name, "dtype": str(devices.device_and_dtype()[1]).replace("torch.", ""),
            "threads": torch.get_num_threads(), "load_s": round(load.load_seconds, 2),
            "median_s": round(common.median_s(times), 4), "min_s": round(min(times), 4),
            "peak_rss_mb": round(common.peak_rss_mb())}


def main() -> None:
    rows = common.dtype_runs("bench.bench_mae", __doc__, measure_one, default_repeats=15, subjects=CHECKPOINTS)
    if rows is None:
        return
    print(f"{'checkpoint':16} {'dtype':9} {'median':>8} {'min':>8} {'load':>6} {'peak RSS':>9}")
    for row in rows:
        print(f"{row['checkpoint']:16} {row['dtype']:9} {row['median_s']:>7.3f}s {row['min_s']:>7.3f}s "
              f"{row['load_s']:>5.1f}s {row['peak_rss_mb']:>7.0f}MB", flush=True)


if __name__ == "__main__":
    main()
