"""A checkout's `app.py`, unchanged, with 6.1's stages timed: each call appends a JSON line to $PDR_BENCH_STAGES.

    cd CHECKOUT && PYTHONPATH=CHECKOUT PDR_BENCH_STAGES=stages.jsonl python /path/to/bench/timed_app.py --port N

`bench_mae_click` starts the app this way to read, for each click, the model's forward timed inside the very
request it belongs to, and the handler's other stages beside it.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import threading
import time

_lock = threading.Lock()


def _record(stage: str, seconds: float) -> None:
    with _lock, open(os.environ["PDR_BENCH_STAGES"], "a") as file:
        file.write(json.dumps({"stage": stage, "seconds": seconds}) + "\n")


def _time(module, name: str, stage: str) -> None:
    fn = getattr(module, name)

    @functools.wraps(fn)
    def timed(*args, **kwargs):
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            _record(stage, time.perf_counter() - start)

    setattr(module, name, timed)  # callers look the function up in its module at each call


def main() -> None:
    sys.path.insert(0, os.getcwd())
    from demos import images
    from demos.compute import mae
    from demos.tabs import widgets

    _time(mae, "masked_forward", "forward")
    _time(mae, "reconstruct", "reconstruct")
    _time(images, "load_image", "load_image")
    _time(widgets, "save_png", "png")
    import app

    app.main()


if __name__ == "__main__":
    main()
