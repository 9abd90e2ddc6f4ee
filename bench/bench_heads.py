"""Benchmark 6.5: probe classification on full-size replicas, both heads sharing one encoder pass.

    python -m bench.bench_heads                  # default dtype policy and fp32, each in its own process
    python -m bench.bench_heads --repeats 5 --dtypes ""

Measures, on a synthetic 256x256 clip (values do not matter for speed):
- load: the base V-JEPA 2 model and both probes, including the encoder comparison;
- classification with one 16-frame clip (step 4) for both heads: preprocessing, ONE encoder pass,
  each head (attentive pooler + linear) — the target is <= 5 s per call on the 2-core CPU;
- classification as each probe was evaluated (16x4 and 32x2: two encoder passes);
- the encoder cache hit (second call on the same clip);
- peak resident memory of the process with every loaded model resident.
Encoder tokens are cached per clip, so each timed call clears that cache first.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from bench import common

NAMES = ["vjepa2-vitl", "vjepa2-ssv2-probe", "vjepa2-diving48-probe"]


def write_clip(path: Path, seconds: float = 4.0, fps: int = 30, seed: int = 0) -> str:
    """A moving square on noise (a new `seed`, a new clip), H.264, 320x256: long enough for 32 frames at step 2."""
    import numpy as np

    from demos import mp4

    background = np.random.default_rng(seed).integers(0, 256, (256, 320, 3), dtype=np.uint8)
    frames = np.repeat(background[None], int(seconds * fps), axis=0)
    for i, frame in enumerate(frames):
        frame[100:160, 10 + i * 2:70 + i * 2] = (255, 40, 40)
    return mp4.write_mp4(frames, path, fps)


def measure(repeats: int, samplings: tuple = ("shared", "per_probe")) -> dict:
    """The figures above for each of `samplings` (`heads.SAMPLINGS`; `bench.bench_gpu` adds "paper")."""
    common.use_full_size_replicas(NAMES)
    import torch

    from demos import devices
    from demos.compute import heads

    start = time.perf_counter()
    loaded = heads.load_heads()
    load_s = time.perf_counter() - start
    clip = write_clip(Path(tempfile.mkdtemp()) / "bench.mp4")

    def fresh(sampling):
        heads.clear_caches()
        return heads.classify(clip, 0.0, sampling=sampling)

    rows = {}
    for sampling in samplings:
        fresh(sampling)  # warm-up
        results, times = [], []
        for _ in range(repeats):
            started = time.perf_counter()
            results.append(fresh(sampling))
            times.append(time.perf_counter() - started)
        best = results[times.index(common.median_s(times))] if common.median_s(times) in times else results[-1]
        rows[sampling] = {
            "total_median_s": round(common.median_s(times), 3), "total_min_s": round(min(times), 3),
            "encoder_passes": [(p.clip, round(p.seconds, 3)) for p in best.passes],
            "heads_ms": {h.title: round(h.seconds * 1000, 1) for h in best.heads},
            "preprocess_s": round(best.preprocess_seconds, 3),
        }
    started = time.perf_counter()
    cached = heads.classify(clip, 0.0, sampling=heads.SAMPLING_SHARED)
    out = {
        "dtype": str(devices.device_and_dtype()[1]).replace("torch.", ""),
        "threads": torch.get_num_threads(),
        "load_and_compare_s": round(load_s, 2),
        "shared": [h.shares_encoder for h in loaded],
        "comparison_s": [round(h.comparison.seconds, 3) for h in loaded],
        "encoders_in_memory": heads.resident_encoders(loaded),
        **rows,
        "cached_call_s": round(time.perf_counter() - started, 3),
        "cached_encoder_runs": cached.encoder_runs,
    }
    out["peak_rss_mb"] = round(common.peak_rss_mb())
    return out


def main() -> None:
    rows = common.dtype_runs("bench.bench_heads", __doc__, measure, default_repeats=5)
    if rows is None:
        return
    for row in rows:
        print(json.dumps(row, indent=1), flush=True)

if __name__ == "__main__":
    main()
