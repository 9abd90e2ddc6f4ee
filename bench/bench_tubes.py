"""Benchmark 6.4: one `/tube_predict` computation on the full-size V-JEPA 2 ViT-L replica, and video decoding.

    python -m bench.bench_tubes                  # the app's dtype policy and fp32, each in its own process
    python -m bench.bench_tubes --repeats 5 --dtypes float32

End to end = decode 16 frames (frame step 4) from a 640x360 clip + crop to 256 px + preprocess + context
encoder + predictor + scores + rendering (H.264 mp4 and the feature picture), for the tab's default
tube (5x5 patches, all 16 frames):
- cold: a new clip, so the full-clip target features are computed too (one more encoder pass);
- warm: the tube moved on the same clip: decoded frames and targets come from the caches, so only the
  context encoder, predictor and rendering run.
Decode: 16 frames at frame step 4 from a generated 60-second 1080p H.264 clip (x264's default keyframe
interval, 250 frames), from the start and from the middle (a seek), and from the middle of a
10-minute 4K clip (2 fps). Targets: end to end
<= 6 s, decode <= 2 s. Peak RSS is the child process's. Random weights: speed and memory only.
"""

from __future__ import annotations

import time
from pathlib import Path

from bench import common

CHECKPOINT = "vjepa2-vitl"
MEDIA_DIR = common.REPLICA_CACHE / "bench-media"
TUBE = dict(top=5, left=5, height=5, width=5, first_tubelet=0, last_tubelet=None)
MOVED_TUBE = dict(top=8, left=3, height=4, width=4, first_tubelet=2, last_tubelet=5)


def _write_h264(path: Path, frames, fps: int) -> Path:
    """Stream the frames into H.264 (x264's default keyframe interval, 250 frames, as many files in the wild
    have), fast and small; written beside the target first, so an interrupted run leaves no half file."""
    from demos import mp4

    tmp = path.with_suffix(".partial.mp4")
    mp4.write_mp4(frames, tmp, fps, crf=28, preset="ultrafast")
    tmp.rename(path)
    return path


def _moving_frames(count: int, height: int, width: int):
    """A scrolling gradient with a bouncing square: cheap to draw, not trivial to encode."""
    import numpy as np

    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([(x * 255 // width), (y * 255 // height), ((x + y) * 127 // (width + height))], -1).astype(np.uint8)
    side = height // 6
    for i in range(count):
        frame = np.roll(base, 3 * i, axis=1)
        cx = int((width - side) * abs(((i / 90) % 2) - 1))
        frame[height // 2 - side // 2:height // 2 + side // 2, cx:cx + side] = (255, 40, 40)
        yield frame


def bench_clip(name: str, seconds: float, height: int, width: int, fps: int = 25) -> Path:
    """Generate (once, cached beside the replicas) a test clip."""
    MEDIA_DIR.mkdir(parents=True, exist_ok=True)
    path = MEDIA_DIR / name
    if not path.exists():
        print(f"writing {path.name} ({seconds:.0f} s, {width}x{height}) ...", flush=True)
        _write_h264(path, _moving_frames(int(seconds * fps), height, width), fps)
    return path


def measure(repeats: int, decode: bool = True) -> dict:
    """The figures above; `decode=False` leaves out the long clips' decoding (CPU work: `bench.bench_gpu`)."""
    common.use_full_size_replicas([CHECKPOINT])
    import torch

    from demos import devices, jepa
    from demos.compute import tube_clips, tubes

    small = bench_clip("tubes-640x360-8s.mp4", 8, 360, 640)
    loaded = jepa.load()
    crop = loaded.model.config.crop_size

    def end_to_end(tube: dict, out: Path) -> dict:
        times = {}
        start = time.perf_counter()
        clip = tube_clips.load_clip(small, start_s=1.0, num_frames=16, frame_step=4, size=crop)
        times["decode"] = time.perf_counter() - start
        result = tubes.predict_tube(clip, **tube)
        start = time.perf_counter()
        tubes.render_video(result, out)
        tubes.features_image(result)
        times["render"] = time.perf_counter() - start
        times.update(result.seconds)
        times["hit"] = result.target_cache_hit
        return times

    out = Path(MEDIA_DIR) / "tubes-bench-out.mp4"
    cold, warm, cold_parts, warm_parts = [], [], [], []
    end_to_end(TUBE, out)  # warm-up (allocations, kernels)
    for _ in range(repeats):
        tubes.TARGET_CACHE.clear()
        tube_clips.CLIP_CACHE.clear()
        start = time.perf_counter()
        parts = end_to_end(TUBE, out)
        cold.append(time.perf_counter() - start)
        cold_parts.append(parts)
        assert not parts["hit"]
        start = time.perf_counter()
        parts = end_to_end(MOVED_TUBE, out)
        warm.append(time.perf_counter() - start)
        warm_parts.append(parts)
        assert parts["hit"]

    def decode_s(start_s: float, clip: Path) -> float:
        from demos import videos

        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            sample = videos.sample_frames(str(clip), start_s=start_s, num_frames=16, frame_step=4)
            times.append(time.perf_counter() - start)
            assert len(sample.frames) == 16
        return round(common.median_s(times), 3)

    def median_parts(rows: list[dict]) -> dict:
        keys = [k for k in rows[0] if k != "hit"]
        return {k: round(common.median_s([r[k] for r in rows]), 3) for k in keys}

    row = {
        "dtype": str(devices.device_and_dtype()[1]).replace("torch.", ""),
        "threads": torch.get_num_threads(),
        "load_s": round(loaded.load_seconds, 1),
        "cold_s": round(common.median_s(cold), 2),
        "warm_s": round(common.median_s(warm), 2),
        "cold_parts": median_parts(cold_parts),
        "warm_parts": median_parts(warm_parts),
    }
    if decode:
        long_hd = bench_clip("tubes-1080p-60s.mp4", 60, 1080, 1920)
        # A 10-minute 4K video, at 2 fps so that generating it once takes about a minute.
        long_4k = bench_clip("tubes-4k-600s-2fps.mp4", 600, 2160, 3840, fps=2)
        row.update(decode_1080p_start0_s=decode_s(0.0, long_hd), decode_1080p_start30_s=decode_s(30.0, long_hd),
                   decode_4k_10min_start300_s=decode_s(300.0, long_4k))
    return {**row, "peak_rss_mb": round(common.peak_rss_mb())}


def main() -> None:
    rows = common.dtype_runs("bench.bench_tubes", __doc__, measure, default_repeats=3)
    if rows is None:
        return
    print(f"{'dtype':9} {'cold e2e':>9} {'warm e2e':>9} {'decode 1080p@0s':>16} {'@30s':>7} {'4K 10min@300s':>14} "
          f"{'load':>6} {'peak RSS':>9}")
    done = []
    for row in rows:
        done.append(row)
        print(f"{row['dtype']:9} {row['cold_s']:>8.2f}s {row['warm_s']:>8.2f}s {row['decode_1080p_start0_s']:>15.3f}s "
              f"{row['decode_1080p_start30_s']:>6.3f}s {row['decode_4k_10min_start300_s']:>13.3f}s "
              f"{row['load_s']:>5.1f}s {row['peak_rss_mb']:>7.0f}MB", flush=True)
    for row in done:
        print(f"{row['dtype']} ({row['threads']} threads) cold parts: {row['cold_parts']}")
        print(f"{row['dtype']} ({row['threads']} threads) warm parts: {row['warm_parts']}")

if __name__ == "__main__":
    main()
