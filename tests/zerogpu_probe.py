"""The app's ZeroGPU path, probed where a Space fails while a CPU test passes: run by tests/test_zerogpu_failure_modes.py
in a process of its own, as on a ZeroGPU Space (the real `spaces` package, the service imitated, one tiny checkpoint
resident on "cuda" with its CPU copy, packed at launch).

    python tests/zerogpu_probe.py BREAKAGE     # prints one JSON line: {"checks": {...}, "asked": [...]}

Two GPU functions of the probe's own go through the app's path (`gpu_task`, the dispatcher, `spaces.GPU`, the app's
worker wrapper); BREAKAGE ("none" for the path as it is) makes a deliberately broken copy of one part of it, as a
mistake in the app would:
- resident_on_cpu: work on the Space's CPU gets the resident model instead of its CPU copy;
- cuda_result: a GPU function returns its tensor without moving it to the CPU;
- grad_argument: the Space passes a GPU function a tensor that needs grad;
- context_in_worker: a worker runs its function in the context it was forked with (a visitor's);
- wrong_factor: the app multiplies the duration it asks by the factor that `spaces` applies itself.
Each check's value is "ok" or what went wrong; "asked" lists the seconds each GPU call asked, in order, for the
test to hold against what the service received.
"""

from __future__ import annotations

import contextvars
import json
import sys
import threading
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from demos import zerogpu  # noqa: E402  (first: it imports `spaces` before anything touches CUDA)

# isort: split
import gradio as gr  # noqa: E402
import torch  # noqa: E402

import checkpoints  # noqa: E402
from demos import devices, gpu_worker, startup  # noqa: E402
from demos.dispatcher import DISPATCHER  # noqa: E402
from demos.gpu_functions import gpu_task  # noqa: E402

CHECKPOINT = "vit-mae-base"
BREAKAGE = sys.argv[1] if len(sys.argv) > 1 else "none"


@gpu_task(gpu_seconds=0.5, cpu_seconds=10.0)  # slower on the CPU than a GPU call: placed on a GPU
def embed_patches(pixels):
    model = checkpoints.load(CHECKPOINT).model
    with torch.inference_mode():
        embedded = model.vit.embeddings.patch_embeddings(devices.on_model(model, pixels)).float()
    return embedded if BREAKAGE == "cuda_result" else embedded.cpu()


@gpu_task(gpu_seconds=0.1, cpu_seconds=10.0)
def visitor_seen():
    """What a GPU function sees of the visitor whose request called it: it should see none."""
    return {"signed_in": zerogpu.signed_in(), "cpu_reason": zerogpu.cpu_reason()}


def break_the_path() -> None:
    if BREAKAGE == "resident_on_cpu":
        checkpoints._copy_key = lambda name: (name, False)
    elif BREAKAGE == "context_in_worker":
        gpu_worker.contextvars = SimpleNamespace(Context=contextvars.copy_context)
    elif BREAKAGE == "wrong_factor":
        duration = DISPATCHER.duration
        DISPATCHER.duration = lambda function, work_s: round(duration(function, work_s) * zerogpu.duration_factor())


def in_a_request(call, *, signed_in=False, cpu_reason=None):
    """`call()` in a visitor's request scope, in a thread of its own as gradio runs a request: (result, runs). What it
    raised is raised here."""
    outcome = {}

    def request():
        with zerogpu.request_scope(signed_in=signed_in, cpu_reason=cpu_reason) as runs:
            try:
                outcome["result"] = call()
            except Exception as error:  # noqa: BLE001 - raised again in the caller
                outcome["error"] = error
            outcome["runs"] = list(runs)

    thread = threading.Thread(target=request)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"], outcome["runs"]


def main() -> None:
    startup.preload_all()
    size = checkpoints.load(CHECKPOINT).model.config.image_size
    with gr.Blocks() as demo:
        gr.Markdown("probe")
    demo.launch(prevent_thread_lock=True, quiet=True)  # ZeroGPU's start-up: the resident weights are packed away
    break_the_path()
    pixels = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0))
    if BREAKAGE == "grad_argument":
        pixels = pixels.requires_grad_() * 1.0
    checks, asked = {}, []

    def check(name):
        def run(test):
            try:
                test()
                checks[name] = "ok"
            except Exception as error:  # noqa: BLE001 - every failure is the check's answer
                checks[name] = f"{type(error).__name__}: {error}"[:600]

        return run

    def gpu_run(runs):
        assert [(r.device, r.fallback) for r in runs] == [("gpu", False)], runs
        asked.append(runs[0].asked)

    @check("only_cpu_tensors_cross")
    def _():
        embedded, runs = in_a_request(lambda: embed_patches(pixels))
        gpu_run(runs)
        assert isinstance(embedded, torch.Tensor) and embedded.device.type == "cpu", embedded

    @check("cpu_copy_answers_as_the_worker")
    def _():
        on_gpu, runs = in_a_request(lambda: embed_patches(pixels.detach()))
        gpu_run(runs)
        on_cpu, runs = in_a_request(lambda: embed_patches(pixels.detach()), cpu_reason="a probe")
        assert [r.device for r in runs] == ["cpu"], runs
        assert on_gpu.abs().sum() > 0 and torch.allclose(on_gpu, on_cpu, atol=1e-5), (on_gpu, on_cpu)

    @check("worker_sees_no_visitor")
    def _():
        for signed_in in (True, False):  # the second visitor's call reuses the first one's worker
            seen, runs = in_a_request(visitor_seen, signed_in=signed_in)
            gpu_run(runs)
            assert seen == {"signed_in": False, "cpu_reason": None}, (signed_in, seen)

    print(json.dumps({"checks": checks, "asked": asked}), flush=True)
    demo.close()


if __name__ == "__main__":
    main()
