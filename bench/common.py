"""Shared benchmark plumbing: full-size random-weight replicas in a Hugging Face cache, timing, memory.

Speed and memory do not depend on weight values, so replicas built from the published configs give
real figures for latency and peak memory; they say nothing about output quality.
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
# Replicas are large (a ViT-L is 1.3 GB in fp32) and deterministic: keep them between runs.
REPLICA_CACHE = Path(os.environ.get("PDR_BENCH_CACHE", Path.home() / ".cache" / "pdr-bench-replicas"))
# "tiny": a quick run of a benchmark's code on tiny replicas (its own cache), to check it works; no figures.
REPLICA_SIZE = os.environ.get("PDR_BENCH_SIZE", "full")
if REPLICA_SIZE == "tiny":
    REPLICA_CACHE = REPLICA_CACHE.with_name(REPLICA_CACHE.name + "-tiny")


def use_full_size_replicas(names: list[str]) -> Path:
    """Write any missing full-size replica of `names` and make `checkpoints` load from that cache, offline."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    sys.path.insert(0, str(ROOT))
    import checkpoints
    from offline import replicas

    for name in names:
        ckpt = checkpoints.get(name)
        ref = REPLICA_CACHE / f"models--{ckpt.hub_id.replace('/', '--')}" / "refs" / "main"
        if not ref.exists() or ref.read_text().strip() != replicas.replica_commit(ckpt):  # none, or an old recipe
            print(f"writing {REPLICA_SIZE} replica of {ckpt.hub_id} ...", flush=True)
            replicas.write_checkpoint(ckpt, REPLICA_CACHE, size=REPLICA_SIZE)
    checkpoints.use_cache_dir(REPLICA_CACHE)
    return REPLICA_CACHE


def time_calls(fn, repeats: int, warmup: int = 1) -> list[float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def median_s(times: list[float]) -> float:
    return statistics.median(times)


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_isolated(module: str, args: list[str], env: dict | None = None) -> str:
    """Run one measurement in a fresh process, so its peak memory is its own. `env` values of None unset."""
    child_env = {**os.environ, **(env or {})}
    child_env = {key: value for key, value in child_env.items() if value is not None}
    result = subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, capture_output=True, text=True,
                            env=child_env)
    if result.returncode != 0:
        raise RuntimeError(f"{module} {args} failed:\n{result.stderr[-3000:]}")
    return result.stdout


class AnonymousMemoryPeak:
    """Samples this process's anonymous resident memory (RssAnon: heap and tensors, not file pages).

    `ru_maxrss` also counts the pages of memory-mapped checkpoint files touched while loading; the
    kernel can drop those at will, so they do not bring a Space closer to running out of memory.
    Use as a context manager; `.peak_mb` holds the largest sample (every 20 ms).
    """

    def __init__(self, interval_s: float = 0.02):
        import threading

        self.interval_s = interval_s
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def current_mb() -> float:
        memory = psutil.Process().memory_info()
        return (memory.rss - memory.shared) / 2**20  # on Linux `shared` is RssFile + RssShmem: the rest is RssAnon

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_mb = max(self.peak_mb, self.current_mb())
            self._stop.wait(self.interval_s)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_mb = max(self.peak_mb, self.current_mb())


def dtype_runs(module: str, doc: str, measure, default_repeats: int = 5, extra_envs: tuple = (),
               subjects: list[str] | None = None):
    """The command line shared by the benchmarks: one isolated child process per dtype.

    In the parent, returns an iterator over each child's result (a dict) for the app's own dtype
    policy and for each `--dtypes` value, then for each of `extra_envs`. With `subjects` (say,
    checkpoint names), that is done for each subject that `--only` keeps (default: all), and a child
    runs `measure(repeats, subject)`. In a child (`--child`), runs `measure(repeats)`, prints its result
    as JSON and returns None.
    """
    import argparse
    import json

    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=default_repeats)
    parser.add_argument("--dtypes", nargs="*", default=["", "float32"], help="'' = the app's own policy")
    if subjects:
        parser.add_argument("--only", nargs="*", default=subjects, choices=subjects)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--subject", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.repeats, args.subject) if subjects else measure(args.repeats)))
        return None
    envs = [{"PDR_DTYPE": dtype or None} for dtype in args.dtypes] + list(extra_envs)

    def results():
        for subject in (args.only if subjects else [None]):
            for env in envs:
                child = ["--child", "--repeats", str(args.repeats)] + (["--subject", subject] if subject else [])
                out = run_isolated(module, child, env=env)
                yield json.loads(out.strip().splitlines()[-1])

    return results()
