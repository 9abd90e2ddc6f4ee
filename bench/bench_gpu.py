"""Every benchmark on one GPU, in one process, and each GPU function's time against the duration it asks for.

    python -m bench.bench_gpu                 # on a machine with a CUDA GPU
    python -m bench.bench_gpu --repeats 2     # quicker
    PDR_BENCH_SIZE=tiny python -m bench.bench_gpu --repeats 1   # check the code on tiny replicas, any machine

Runs the measurements of bench_mae (base, large, huge), bench_mae_vs_jepa, bench_tubes (16 frames; the long
clips' decoding is CPU work and left out), bench_heads (shared, per-probe and the paper protocol) and
bench_vqa on full-size random-weight replicas, in the app's dtype policy (bf16 on a GPU), one after the
other in this process, so each model loads once. One failing measurement is reported and the others go on.

Meanwhile every GPU function (`gpu_functions.gpu_task`) is timed on each call, and the duration it would ask
ZeroGPU for on the same arguments is worked out from its `duration`. The table at the end shows, per
function, the first call (kernels and caches still cold, as in a fresh ZeroGPU worker), the median and the
slowest call, against the work the duration estimates (the duration less `zerogpu.GPU_COLD_START_S`).
Then the time to copy every resident model's weights from the CPU to the GPU, which a fresh ZeroGPU worker
pays before its first call.

Random weights: speed and memory only. Figures are for the GPU named in the first line.
"""

from __future__ import annotations

import argparse
import functools
import inspect
import json
import math
import statistics
import time
import traceback

from bench import common

EVERY_MODEL = ["vit-mae-base", "vit-mae-large", "vit-mae-huge", "vjepa2-vitl", "vjepa2-ssv2-probe",
               "vjepa2-diving48-probe", "qwen2.5-0.5b-instruct"]


class GpuFunctionTimes:
    """Wraps the GPU functions of the compute modules to record each call's seconds and asked duration."""

    def __init__(self):
        self.calls: dict[str, list[tuple[float, float]]] = {}  # name -> [(seconds, asked duration)]

    def install(self, module, name: str) -> None:
        task = getattr(module, name)
        label = f"{module.__name__.rsplit('.', 1)[-1]}.{name}"

        def asked(args, kwargs) -> float:
            duration = task.duration
            return math.ceil(duration(*args, **kwargs) if callable(duration) else duration)

        if inspect.isgeneratorfunction(task.plain):

            @functools.wraps(task)
            def timed_stream(*args, **kwargs):
                asks, start = asked(args, kwargs), time.perf_counter()
                try:
                    yield from task(*args, **kwargs)
                finally:  # drained or closed: the GPU is free again either way
                    self.calls.setdefault(label, []).append((time.perf_counter() - start, asks))

            setattr(module, name, timed_stream)
            return

        @functools.wraps(task)
        def timed(*args, **kwargs):
            asks, start = asked(args, kwargs), time.perf_counter()
            result = task(*args, **kwargs)
            self.calls.setdefault(label, []).append((time.perf_counter() - start, asks))
            return result

        setattr(module, name, timed)

    def report(self, start_margin_s: float) -> list[str]:
        """Per function: first, median and slowest call; the durations asked; and the tightest call's
        estimated work (duration less the start margin) over its measured seconds: above 1, the estimate holds."""
        lines = [f"{'GPU function':30} {'calls':>5} {'first':>8} {'median':>8} {'max':>8} {'asks':>9} "
                 f"{'tightest: est. work / measured':>31}"]
        for label, calls in sorted(self.calls.items()):
            seconds = [s for s, _ in calls]
            asks = [a for _, a in calls]
            tight_s, tight_asks = min(calls, key=lambda call: (call[1] - start_margin_s) / max(call[0], 1e-6))
            lines.append(f"{label:30} {len(calls):>5} {seconds[0]:>7.3f}s {statistics.median(seconds):>7.3f}s "
                         f"{max(seconds):>7.3f}s {min(asks):>4}-{max(asks):<3}s "
                         f"{tight_asks - start_margin_s:>9.1f}s / {tight_s:.3f}s = "
                         f"{(tight_asks - start_margin_s) / max(tight_s, 1e-6):.1f}x")
        return lines


def user_actions(repeats: int) -> dict:
    """What a learner does on 6.4 and 6.5 with the GPU defaults, each repeat on a clip never seen before: pick
    it (the page's start-early prepare), then click; and a question about a new clip, end to end."""
    import tempfile
    from pathlib import Path

    from bench.bench_heads import write_clip
    from demos import jepa
    from demos.compute import heads, tube_clips, tubes

    folder = Path(tempfile.mkdtemp())
    config = jepa.load().model.config
    crop, grid = config.crop_size, config.crop_size // config.patch_size
    tube, moved = (grid // 3, grid // 3, grid // 3, grid // 3), (grid // 2, grid // 5, grid // 4, grid // 4, 2, 5)
    rows: dict[str, list[float]] = {}

    def timed(label: str, call, *args, **kwargs):
        start = time.perf_counter()
        result = call(*args, **kwargs)
        rows.setdefault(label, []).append(time.perf_counter() - start)
        return result

    def ask(label: str, path) -> None:
        start, first = time.perf_counter(), None
        for update in heads.answer_stream(path, 0.0, "What is the person doing?"):
            if first is None and update.answer:
                first = time.perf_counter() - start
        rows.setdefault(f"{label}, first token", []).append(first if first is not None else float("nan"))
        rows.setdefault(f"{label}, answer complete", []).append(time.perf_counter() - start)

    for seed in range(1, repeats + 2):  # the first round warms up and is dropped
        path = str(write_clip(folder / f"clip{seed}.mp4", seed=seed))
        clip = timed("6.4 pick: decode 16 frames", tube_clips.load_clip, path, num_frames=16, size=crop)
        timed("6.4 pick: prepare (targets)", tubes.prepare_targets, clip)
        timed("6.4 click after prepare", tubes.predict_tube, clip, *tube)
        timed("6.4 tube moved", tubes.predict_tube, clip, *moved)
        timed("6.5 pick: prepare (device default)", heads.prefetch, path, 0.0)
        timed("6.5 probes after prepare", heads.classify, path, 0.0)
        ask("6.5 question, same clip", path)  # the clip's features cached by the probes
        fresh = str(write_clip(folder / f"fresh{seed}.mp4", seed=100 + seed))
        timed("6.5 probes, clip just picked", heads.classify, fresh, 0.0)
        ask("6.5 question, clip just picked", str(write_clip(folder / f"ask{seed}.mp4", seed=200 + seed)))
    return {label: round(statistics.median(times[1:]), 3) for label, times in rows.items()}


def weights_to_gpu_seconds() -> tuple[float, float]:
    """(seconds, GB) to copy every loaded model from CPU memory to the GPU, as a fresh ZeroGPU worker does."""
    import torch

    import checkpoints

    models = [checkpoints.load(name).model for name in EVERY_MODEL if checkpoints.is_loaded(name)]
    for model in models:
        model.to("cpu")
    size_gb = sum(p.numel() * p.element_size() for m in models for p in m.parameters()) / 1e9
    torch.cuda.synchronize()
    start = time.perf_counter()
    for model in models:
        model.to("cuda")
    torch.cuda.synchronize()
    return time.perf_counter() - start, size_gb


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", help="also write every result to this file")
    args = parser.parse_args()

    common.use_full_size_replicas(EVERY_MODEL)
    import torch

    from bench import bench_heads, bench_mae, bench_mae_vs_jepa, bench_tubes, bench_vqa
    from demos import devices, zerogpu
    from demos.compute import heads, mae, mae_vs_jepa, noise_sweep, tubes
    from demos.compute.heads import answering, probe_work  # instrumented where their callers look them up

    if not torch.cuda.is_available() and common.REPLICA_SIZE != "tiny":
        raise SystemExit("bench_gpu measures a CUDA GPU; none is visible here.")
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "none (a tiny check)"
    print(f"GPU: {gpu}, torch {torch.__version__}, "
          f"dtype {devices.device_and_dtype()[1]}", flush=True)
    recorder = GpuFunctionTimes()
    for module, name in [(mae, "reconstruct"), (mae_vs_jepa, "predict_block"), (noise_sweep, "predict_levels"),
                         (tubes, "encode_targets"), (tubes, "encode_and_predict"), (probe_work, "encode_and_classify"),
                         (answering, "answer_on_device")]:
        recorder.install(module, name)

    measurements = {f"mae {name}": functools.partial(bench_mae.measure_one, args.repeats, name)
                    for name in bench_mae.CHECKPOINTS}
    measurements.update({
        "mae_vs_jepa": functools.partial(bench_mae_vs_jepa.measure, args.repeats),
        "tubes (16 frames)": functools.partial(bench_tubes.measure, args.repeats, decode=False),
        "heads": functools.partial(bench_heads.measure, args.repeats, samplings=heads.SAMPLINGS[1:]),
        "vqa": functools.partial(bench_vqa.measure, args.repeats),
        "user actions": functools.partial(user_actions, args.repeats),
    })
    results = {}
    for label, measure in measurements.items():
        start = time.perf_counter()
        try:
            results[label] = measure()
        except Exception:  # one broken measurement must not hide the others' figures
            results[label] = {"error": traceback.format_exc(limit=8)}
        print(f"--- {label} ({time.perf_counter() - start:.0f} s): {json.dumps(results[label])}", flush=True)

    copy_s, size_gb = weights_to_gpu_seconds() if torch.cuda.is_available() else (float("nan"), float("nan"))
    results["weights_to_gpu"] = {"seconds": round(copy_s, 2), "gb": round(size_gb, 2)}
    results["gpu_memory_peak_gb"] = round(torch.cuda.max_memory_allocated() / 1e9, 2) if torch.cuda.is_available() else None
    results["gpu_functions"] = {label: calls for label, calls in recorder.calls.items()}
    if args.json:
        with open(args.json, "w") as out:
            json.dump(results, out, indent=1)
    print()
    print("\n".join(recorder.report(zerogpu.GPU_COLD_START_S)))
    print(f"every model's weights CPU -> GPU: {copy_s:.2f} s for {size_gb:.2f} GB; "
          f"peak GPU memory allocated {results['gpu_memory_peak_gb']} GB")


if __name__ == "__main__":
    main()
