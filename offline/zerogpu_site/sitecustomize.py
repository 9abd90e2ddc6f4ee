"""A ZeroGPU worker on a machine without a GPU: the one step of the real `spaces` package that needs NVIDIA, done on
the CPU. Put this folder on PYTHONPATH with ZEROGPU_IMITATED_GPU set (`offline.zerogpu_service.environment` does).

- `spaces.zero.config` reads the GPU model from the NVIDIA driver (`/proc/driver/nvidia/gpus/*/information`) to pick
  its duration factor and the emulated device's properties: here it reads ZEROGPU_IMITATED_GPU instead.
- A fresh worker leaves the CUDA emulation (`spaces.zero.torch.unpatch`), starts CUDA on its GPU (`init`) and copies
  the weights packed at launch onto it (`move`). Here nothing starts CUDA, and the packed weights are read back onto
  the CPU (the pack file is mapped copy-on-write, so workers share its pages). With ZEROGPU_IMITATED_WORKER=emulated
  (the default) the worker keeps the package's own CUDA emulation, the one the Space's process runs under before
  launch, the weights read back as the CPU originals behind the model's "cuda" tensors: inside a worker a model
  reports "cuda" and computes on this CPU; a tensor moved to "cuda" is one of the emulation's, and returning one fails
  as a CUDA tensor crossing to the Space's process does. The emulation's torch modes are per thread, so each task's
  thread enters them, as the package's own threads do. With ZEROGPU_IMITATED_WORKER=cpu the worker leaves the
  emulation as on a Space, and the weights are given to the model's tensors as the real move gives them their CUDA
  copies: its model computes on the CPU, at a GPU worker's Python cost.

Everything else (the emulation in the Space's process, the packing at launch, the workers and their reuse, the
pickling, the scheduling over HTTP) is the real package's own code.
"""

import importlib.abc
import importlib.machinery
import os
import sys

_GPU_MODEL = os.environ.get("ZEROGPU_IMITATED_GPU")
# "emulated": a worker keeps the CUDA emulation (its models report "cuda"; what a GPU function returns on "cuda" fails
# to cross, as on a Space), at the emulation's cost, every torch call passing through Python (about 15x a tiny
# model's forward). "cpu": a plain CPU worker, the weights given to the model's tensors as the real move gives them
# their CUDA copies: for benches, whose workers should cost what a GPU worker's Python does.
_WORKER = os.environ.get("ZEROGPU_IMITATED_WORKER", "emulated")


def _driver_reports(module) -> None:
    module._read_gpu_information = lambda: f"Model: {_GPU_MODEL}\n"


def _moves_onto_the_cpu(module) -> None:
    import mmap

    import torch
    from spaces.zero.torch import patching

    def init(nvidia_uuid: str) -> None:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # this worker has no GPU: real CUDA stays off

    def move(callback=None) -> None:
        callback = callback or (lambda _: None)
        # The packs' layout, as `packing.pack_to_cuda` reads it: each packed tensor becomes the CPU original behind its
        # fakes again, as before launch.
        for pack in patching.tensor_packs:
            with open(pack.path(), "rb") as file:
                mapped = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_COPY) if pack.total_size else None
            offset = 0
            for tensor, size, aligned_size in [t for batch in pack.batches for t in batch] + pack.big_tensors:
                storage = torch.frombuffer(mapped, dtype=torch.uint8, count=size, offset=offset).untyped_storage()
                original = torch.tensor([], dtype=tensor.dtype).set_(storage, 0, tensor.shape, tensor.stride())
                for fake in pack.fakes[tensor]:
                    if _WORKER == "cpu":
                        fake.data = original
                    else:
                        patching.cuda_aliases[fake] = original
                offset += aligned_size
                callback(size)

    module.init, module.move = init, move
    if _WORKER != "cpu":
        module.unpatch = lambda: None  # the worker keeps ZeroGPU's CUDA emulation: its "cuda" is this CPU


def _tasks_see_cuda(module) -> None:
    """A worker runs each task in a thread of its own; the emulation's torch modes are per thread: enter them there."""
    import contextvars

    from spaces.zero import torch as zero_torch

    class _Context:
        def __init__(self, context):
            self.context = context

        def run(self, fn, *args, **kwargs):
            if module.forked:
                zero_torch.enter_mode()
            return self.context.run(fn, *args, **kwargs)

    module.copy_context = lambda: _Context(contextvars.copy_context())


_AFTER_IMPORT = {"spaces.zero.config": _driver_reports, "spaces.zero.torch": _moves_onto_the_cpu}
if _WORKER != "cpu":
    _AFTER_IMPORT["spaces.zero.wrappers"] = _tasks_see_cuda


class _AfterImport(importlib.abc.MetaPathFinder):
    """Runs `_AFTER_IMPORT[name](module)` once the module `name` has been executed."""

    def find_spec(self, name, path, target=None):
        if name not in _AFTER_IMPORT:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        execute = spec.loader.exec_module

        def exec_module(module):
            execute(module)
            _AFTER_IMPORT[name](module)

        spec.loader.exec_module = exec_module
        return spec


if _GPU_MODEL:
    sys.meta_path.insert(0, _AfterImport())
