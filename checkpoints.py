"""The one registry of every Hugging Face checkpoint the Space uses, and how they are loaded.

- `REGISTRY`: hub id, revision, model class, processor and published geometry (patch, image and tubelet size) of
  each checkpoint.
- `load(name)`: lazy, cached, thread-safe loading (first use only, once per process) through the ordinary
  `from_pretrained(hub_id)` path, on the device and dtype chosen by `devices.device_and_dtype()`.
- `use_loader(name, fn)`: a module's own loader for a checkpoint (loading and the checks that touch its weights).
- `enable_offline_demo()`: the explicit offline demo mode (tiny random-weight models, see `offline/replicas.py`).
- `reset()`: lazy loading again, as a process starts (tests).

CLI: `python checkpoints.py list` and `python checkpoints.py download [names]`.
No gradio here: a checkpoint that cannot be fetched raises `CheckpointUnavailable`, a `UserError`.

On ZeroGPU (`demos.zerogpu`) every checkpoint is loaded and moved to the device once, at start-up, before
`launch()` (`demos.startup`). A model check that touches weights (a mask token, an encoder comparison) belongs in
that checkpoint's loader, registered with `use_loader(name, fn)`, so it runs then too. Afterwards `load()` of a
checkpoint that is not resident raises a `UserError` (`keep_resident_only`): nothing loads inside a GPU function
(`demos.gpu_functions`). Elsewhere (CPU, local GPU) loading stays lazy. ZeroGPU packs the device copies away at
launch, so the main process keeps a CPU copy of each for the work that runs there: `load()` returns it inside
`zerogpu.on_cpu`.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from demos import devices, zerogpu  # on ZeroGPU `zerogpu` imports `spaces` before anything touches CUDA
from demos.errors import NeedsGpu, UserError

log = logging.getLogger(__name__)

# Environment variables that choose what loads, and how.
ENV_OFFLINE_DEMO = "PDR_OFFLINE_DEMO"  # "1": tiny random-weight models, a banner says so
ENV_PROJECTOR_REPO = "PDR_PROJECTOR_REPO"  # hub id of a trained VQA projector (none is published)
ENV_CPU_INT8 = "PDR_CPU_INT8"  # "0": keep the LLM's linear layers in floating point on a CPU

HUB_CHECK_TIMEOUT_S = 2.0  # how long a checkpoint missing from the cache waits for the Hub's first answer


@dataclass(frozen=True)
class Checkpoint:
    name: str  # short name used in the UI, the CLI and the code
    hub_id: str
    model_class: str  # a transformers class name, or "module:Class" for our own hub mixins
    processor_class: str | None  # transformers Auto class for its processor or tokenizer
    params_millions: float  # published parameter count, for `list` and memory planning
    description: str
    # "main" until a commit id is pinned here: commit ids can only be read from the Hub, which the
    # machines this was written on cannot reach (see docs/deploy.md, "Pinning revisions").
    revision: str = "main"
    # Token-by-token decoding is memory-bound matrix-vector work: on a CPU, int8 weights (dynamic quantisation)
    # decode several times faster than fp32 or bf16 (docs/benchmarks.md, "Why Qwen2.5-0.5B-Instruct").
    cpu_int8: bool = False
    # The files the app loads from the repo, by name: `preload_from_hub` in the README front matter lists
    # them, and `download` fetches them plus every small JSON config (`allow_patterns`). Never the other
    # formats the repos also hold (tf_model.h5, flax_model.msgpack, the original .pth): up to 2.6 GB each.
    files: tuple[str, ...] = ("config.json", "model.safetensors")
    # The published geometry (from each repo's config.json), known without loading the model: the side of a
    # square patch and of the image the model was trained at, in pixels, and the frames per tubelet of a video
    # model. None where it does not apply. A loaded model's own config (a tiny replica's is smaller) decides
    # the grid of a computation; these describe the published checkpoints.
    patch_size: int | None = None
    image_size: int | None = None
    tubelet_size: int | None = None

    @property
    def patches_per_side(self) -> int | None:
        """Patches along each side of the published image (14 for ViT-MAE at 224 px, 16 for V-JEPA 2 at 256)."""
        return self.image_size // self.patch_size if self.image_size and self.patch_size else None

    @property
    def allow_patterns(self) -> list[str]:
        """`snapshot_download` patterns: the listed files, and any `*.json` (a few KB each), so that a
        processor config is fetched whatever its name (the V-JEPA 2 repos' listing could not be checked)."""
        return [*self.files, "*.json"]


# vit-mae-large and -huge publish only pytorch_model.bin (besides tf_model.h5); base has safetensors.
_MAE_FILES = ("config.json", "preprocessor_config.json", "model.safetensors")
_MAE_BIN_FILES = ("config.json", "preprocessor_config.json", "pytorch_model.bin")
_QWEN_FILES = ("config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
               "vocab.json", "merges.txt")
_VJEPA2_VITL = dict(patch_size=16, image_size=256, tubelet_size=2)  # the ViT-L/16 at 256 px all three share


def _mae(size: str, params_millions: int, description: str, files: tuple[str, ...], *, patch_size: int) -> Checkpoint:
    """One of the published ViT-MAE pre-training checkpoints (224 px)."""
    return Checkpoint(f"vit-mae-{size}", f"facebook/vit-mae-{size}", "ViTMAEForPreTraining", "AutoImageProcessor",
                      params_millions, description, files=files, patch_size=patch_size, image_size=224)


# transformers would otherwise, on loading a .bin repo online, look for (and may download, 1.3 GB for
# vit-mae-large's refs/pr/1) a safetensors conversion in a background thread. The .bin loads as it is.
os.environ.setdefault("DISABLE_SAFETENSORS_CONVERSION", "1")


REGISTRY: dict[str, Checkpoint] = {
    c.name: c
    for c in [
        _mae("base", 112, "ViT-B/16 masked autoencoder, pixel targets (MAE paper's visualisation checkpoint)",
             _MAE_FILES, patch_size=16),
        _mae("large", 330, "ViT-L/16 masked autoencoder, pixel targets", _MAE_BIN_FILES, patch_size=16),
        _mae("huge", 657, "ViT-H/14 masked autoencoder, pixel targets (14-pixel patches)", _MAE_BIN_FILES,
             patch_size=14),
        Checkpoint(
            "vjepa2-vitl", "facebook/vjepa2-vitl-fpc64-256", "VJEPA2Model", "AutoVideoProcessor", 326,
            "V-JEPA 2 ViT-L encoder (304M) + predictor (22M), 256 px, 16-pixel patches, tubelets of 2", **_VJEPA2_VITL,
        ),
        Checkpoint(
            "vjepa2-ssv2-probe", "facebook/vjepa2-vitl-fpc16-256-ssv2", "VJEPA2ForVideoClassification",
            "AutoVideoProcessor", 375, "attentive probe on the frozen ViT-L: Something-Something v2, 174 actions",
            **_VJEPA2_VITL,
        ),
        Checkpoint(
            "vjepa2-diving48-probe", "facebook/vjepa2-vitl-fpc32-256-diving48", "VJEPA2ForVideoClassification",
            "AutoVideoProcessor", 375, "attentive probe on the frozen ViT-L: Diving48, 48 dives", **_VJEPA2_VITL,
        ),
        Checkpoint(
            "qwen2.5-0.5b-instruct", "Qwen/Qwen2.5-0.5B-Instruct", "AutoModelForCausalLM", "AutoTokenizer", 494,
            "small instruct LLM that answers questions about a clip (VQA head)", cpu_int8=True, files=_QWEN_FILES,
        ),
        Checkpoint(
            "vqa-projector", os.environ.get(ENV_PROJECTOR_REPO, ""), "demos.compute.heads.projector:VideoProjector", None, 5,
            "MLP projector from frozen V-JEPA 2 tokens into the LLM (train with train_projector.py)",
        ),
    ]
}

MAE_CHECKPOINTS = ["vit-mae-base", "vit-mae-large", "vit-mae-huge"]


def get(name: str) -> Checkpoint:
    try:
        return REGISTRY[name]
    except KeyError:
        raise UserError(f"Unknown checkpoint '{name}'. Choose one of: {', '.join(REGISTRY)}.") from None


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------


class CheckpointUnavailable(UserError):
    """The checkpoint is neither in the local cache nor reachable on the Hub."""


@dataclass
class Loaded:
    checkpoint: Checkpoint
    model: object
    processor: object | None
    load_seconds: float
    # Facts about this model that the code using it checks once after loading (None: not checked yet).
    mask_token_copied: bool | None = None  # V-JEPA 2: the untrained predictor mask token 1 now holds token 0
    encoder_comparison: object | None = None  # a probe: `shared_encoder.EncoderComparison` with the base V-JEPA 2 encoder
    position_layouts: object | None = None  # ViT-MAE: `mae_positions.Layouts`, the formula of its position tables
    # Names these weights across restarts (a hash of a few of their values, taken at load): the key of results kept
    # on disk, which a checkpoint saved again under the same id must not serve.
    weights_digest: str = ""


# Each checkpoint once per copy: (name, False) on this machine's device, (name, True) the Space's CPU copy on
# ZeroGPU (`demos.startup`), which the actions that run on the CPU use.
_loaded: dict[tuple[str, bool], Loaded] = {}
# One checkpoint loads at a time: two first clicks load the weights once, and two loads (a click's and a
# cancelled prepare's, whose thread runs on) never add their memory peaks. Re-entrant: a loader may load.
_load_lock = threading.RLock()
_cache_dir: str | None = None  # None: huggingface_hub's default cache (HF_HUB_CACHE)
_offline_demo = False


def offline_demo_enabled() -> bool:
    return _offline_demo


def _copy_key(name: str) -> tuple[str, bool]:
    """Which copy `load(name)` means here: the CPU copy inside an action that runs on the Space's CPU (ZeroGPU)."""
    return name, zerogpu.ON_ZERO_GPU and zerogpu.cpu_reason() is not None


def is_loaded(name: str) -> bool:
    return _copy_key(name) in _loaded


def _resolve_class(path: str):
    if ":" in path:
        module, cls = path.split(":")
        return getattr(importlib.import_module(module), cls)
    import transformers

    return getattr(transformers, path)


def _hub_kwargs(ckpt: Checkpoint) -> dict:
    kwargs = {"revision": ckpt.revision}
    if _cache_dir is not None:
        kwargs["cache_dir"] = _cache_dir
    return kwargs


def weights_id(name: str) -> str:
    """What names the weights `load(name)` serves, for results kept across restarts (the sweeps on disk): the hub id,
    the snapshot's commit in the cache, and `Loaded.weights_digest` (read from the weights at load, before ZeroGPU's
    launch packs them away: a replica written again under the same commit holds other random weights)."""
    from huggingface_hub import try_to_load_from_cache

    ckpt = get(name)
    found = try_to_load_from_cache(ckpt.hub_id, "config.json", **_hub_kwargs(ckpt))
    commit = Path(found).parent.name if isinstance(found, str) else "?"
    return f"{ckpt.hub_id}@{commit}#{load(name).weights_digest}"


def _fetch_hint(ckpt: Checkpoint) -> str:
    return (
        f"Fetch it once with `python checkpoints.py download {ckpt.name}` on a machine that can reach "
        f"the Hugging Face Hub, or start the app with `--offline-demo` to try the interface on tiny random models."
    )


def _from_hub(ckpt: Checkpoint, dtype, local_files_only: bool):
    """The model and processor through the ordinary `from_pretrained(hub_id)` path."""
    kwargs = {**_hub_kwargs(ckpt), "local_files_only": local_files_only}
    # transformers classes take the dtype while loading; our own hub mixins are cast afterwards.
    dtype_kwargs = {} if ":" in ckpt.model_class else {"dtype": dtype}
    model = _resolve_class(ckpt.model_class).from_pretrained(ckpt.hub_id, **dtype_kwargs, **kwargs)
    processor = None
    if ckpt.processor_class:
        processor = _resolve_class(ckpt.processor_class).from_pretrained(ckpt.hub_id, **kwargs)
    return model, processor


def _hub_answers(ckpt: Checkpoint) -> bool:
    """One request without retries: does the Hub answer at all (any HTTP status counts)?

    huggingface_hub retries a failed request five times with growing backoff when a file is not
    cached; asking once first turns "no network" into a message within `HUB_CHECK_TIMEOUT_S`.
    """
    from huggingface_hub import get_hf_file_metadata, hf_hub_url
    from huggingface_hub.errors import HfHubHTTPError

    start = time.perf_counter()
    try:
        get_hf_file_metadata(hf_hub_url(ckpt.hub_id, "config.json", revision=ckpt.revision),
                             timeout=HUB_CHECK_TIMEOUT_S)
    except HfHubHTTPError:  # 401, 404...: the Hub is there, and from_pretrained will say what is wrong
        return True
    except Exception as error:  # DNS, refused, timeout, HF_HUB_OFFLINE=1
        log.warning("The Hugging Face Hub did not answer (%.1f s, one try): %s", time.perf_counter() - start, error)
        return False
    return True


def _load_uncached(ckpt: Checkpoint, cpu_copy: bool = False) -> Loaded:
    """The local cache first, without a single request; the Hub only for what is missing there.

    So a cached checkpoint (a Space's `preload_from_hub`, the offline demo's replicas) loads without
    network, and a missing one with no Hub is reported at once instead of after huggingface_hub's retries.
    Revisions are "main" until pinned: a cached "main" is used as it is, not refreshed from the Hub.
    """
    import torch

    if not ckpt.hub_id:
        raise CheckpointUnavailable(
            f"No hub id is configured for '{ckpt.name}'. Train one with train_projector.py and set {ENV_PROJECTOR_REPO}."
        )
    device, dtype = (torch.device("cpu"), devices.cpu_dtype()) if cpu_copy else devices.device_and_dtype()
    int8 = device.type == "cpu" and int8_on_cpu(ckpt)
    if int8:
        dtype = torch.float32  # dynamic int8 quantisation starts from fp32 weights
    start = time.perf_counter()
    # transformers and huggingface_hub report "not in cache", "repo not found" and network failures as
    # OSError subclasses (EnvironmentError); ValueError covers an empty cache entry.
    try:
        model, processor = _from_hub(ckpt, dtype, local_files_only=True)
    except (OSError, ValueError) as cache_error:
        if _offline_demo or not _hub_answers(ckpt):
            log.warning("Could not load %s after %.1f s: not cached (%s), no Hub", ckpt.hub_id,
                        time.perf_counter() - start, cache_error)
            raise CheckpointUnavailable(
                f"The checkpoint {ckpt.hub_id} could not be loaded: it is not in the local cache and the "
                f"Hugging Face Hub could not be reached. {_fetch_hint(ckpt)}"
            ) from cache_error
        try:
            model, processor = _from_hub(ckpt, dtype, local_files_only=False)
        except (OSError, ValueError) as error:
            log.warning("Could not load %s after %.1f s: %s", ckpt.hub_id, time.perf_counter() - start, error)
            raise CheckpointUnavailable(
                f"The checkpoint {ckpt.hub_id} could not be loaded from the Hugging Face Hub "
                f"({str(error).splitlines()[0]}). {_fetch_hint(ckpt)}"
            ) from error
    if isinstance(model, torch.nn.Module):
        model = model.to(device=device, dtype=dtype).eval()
        model.requires_grad_(False)
        if int8:
            model = _quantize_linear_int8(model, ckpt)
    seconds = time.perf_counter() - start
    log.info("Loaded %s (%s) in %.1f s", ckpt.hub_id, ckpt.model_class, seconds)
    return Loaded(ckpt, model, processor, seconds, weights_digest=weights_digest(model))


def weights_digest(model) -> str:
    """A short hash of the first values of every weight tensor (their names, shapes and dtypes too): enough to tell
    two sets of weights apart, read in milliseconds."""
    import hashlib

    import torch

    digest = hashlib.blake2b(digest_size=12)
    if isinstance(model, torch.nn.Module):
        for name, tensor in model.state_dict().items():
            if not isinstance(tensor, torch.Tensor):  # an int8 layer's packed weights
                continue
            head = tensor.detach().reshape(-1)[:16].float().cpu().numpy() if tensor.is_floating_point() else b""
            digest.update(f"{name}{tuple(tensor.shape)}{tensor.dtype}".encode())
            digest.update(bytes(memoryview(head)) if len(head) else b"")
    return digest.hexdigest()


def int8_on_cpu(ckpt: Checkpoint) -> bool:
    """Whether a copy of this checkpoint on a CPU has int8 linear layers (`cpu_int8`, unless PDR_CPU_INT8=0)."""
    return ckpt.cpu_int8 and os.environ.get(ENV_CPU_INT8, "1") != "0"


def _quantize_linear_int8(model, ckpt: Checkpoint):
    """Weights int8, activations float, scales computed per call: no calibration data needed.

    torch marks its quantised tensors as deprecated (torchao is the successor); if a later torch
    drops them, the model simply stays in fp32.
    """
    import torch

    try:
        quantized = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
    except Exception as error:  # an old or new torch without it: slower, still correct
        log.warning("%s: int8 quantisation unavailable (%s); decoding in fp32", ckpt.hub_id, error)
        return model
    log.info("%s: linear layers quantised to int8 for CPU decoding (%s=0 turns this off)", ckpt.hub_id, ENV_CPU_INT8)
    return quantized


def load(name: str) -> Loaded:
    """The checkpoint's model and processor, loaded on first use, then shared (one per process).

    After ZeroGPU's start-up (`keep_resident_only`) only resident checkpoints are returned; any other is a
    UserError. Inside an action that runs on the Space's CPU there, the checkpoint's CPU copy.
    """
    ckpt = get(name)
    key = _copy_key(name)
    if key in _loaded:
        return _loaded[key]
    if _resident_only:
        if key in _no_room:
            raise NeedsGpu(
                f"This needs the GPU: the Space's memory has no room for a CPU copy of {ckpt.hub_id or name}, and "
                f"ZeroGPU cannot run it right now ({zerogpu.cpu_reason()}). Try again in a few minutes; signed-in "
                "visitors have GPU time of their own: open this Space on huggingface.co and sign in there."
            )
        where = "on the Space's CPU" if key[1] else "on this Space"
        raise CheckpointUnavailable(
            f"The checkpoint {ckpt.hub_id or name} is not loaded {where}. On ZeroGPU every model is loaded "
            f"once at start-up, and this one was not{_not_resident.get(key, '')}."
        )
    with _load_lock:
        if key not in _loaded:
            _loaded[key] = _load_uncached(ckpt, cpu_copy=key[1])
    return _loaded[key]


# ---------------------------------------------------------------------------------------------
# What ZeroGPU's start-up (`demos.startup`) leaves loaded
# ---------------------------------------------------------------------------------------------

_loaders: dict = {}  # name -> a module's own loader (load + checks that touch weights)
_resident_only = False  # set at start-up: nothing loads lazily afterwards
_not_resident: dict[tuple[str, bool], str] = {}  # (name, CPU copy) -> why start-up left it out (shown by load)
_no_room: set[tuple[str, bool]] = set()  # CPU copies the memory plan left out: their actions need the GPU


def use_loader(name: str, loader) -> None:
    """`load_with_checks(name)` calls `loader(name)` (which calls `load` and checks facts about the model)."""
    _loaders[name] = loader


def load_with_checks(name: str) -> Loaded:
    """`load(name)` through the loader its module registered (`use_loader`), so that its checks run too."""
    _loaders.get(name, load)(name)
    return load(name)


def keep_resident_only(why_not: dict[tuple[str, bool], str], needs_gpu: set[tuple[str, bool]]) -> None:
    """From now on `load` returns only what is loaded (ZeroGPU, after start-up). `why_not`: {(name, CPU copy): why
    it is not resident}, a clause its error ends with; `needs_gpu`: the CPU copies left out for want of memory,
    whose actions need the GPU."""
    global _resident_only
    with _load_lock:
        _not_resident.update(why_not)
        _no_room.update(needs_gpu)
        _resident_only = True


def reset(*, forget_models: bool = True) -> None:
    """Loading is lazy again, as when a process starts: forget what start-up decided and, unless
    `forget_models` is False, every loaded model. For tests: after a start-up scenario, or to build from nothing."""
    global _resident_only
    with _load_lock:
        if forget_models:
            _loaded.clear()
        _not_resident.clear()
        _no_room.clear()
        _resident_only = False


def use_cache_dir(path: str | os.PathLike | None) -> None:
    """Load from this Hugging Face cache folder instead of the default one (models loaded from another are forgotten)."""
    global _cache_dir
    _cache_dir = None if path is None else str(path)
    _loaded.clear()


def enable_offline_demo(cache_dir: str | os.PathLike | None = None) -> Path:
    """Write tiny random-weight checkpoints under the real hub ids into a private cache and load from it.

    Outputs are meaningless; the UI shows a banner while this is on. Never a silent fallback: only the
    `--offline-demo` flag or PDR_OFFLINE_DEMO=1 turns it on.
    """
    global _offline_demo
    import tempfile

    from offline import replicas  # test and demo tooling: imported only when asked for

    target = Path(cache_dir or tempfile.mkdtemp(prefix="pdr-offline-demo-"))
    for ckpt in REGISTRY.values():
        replicas.write_checkpoint(ckpt, target, size="tiny")
    use_cache_dir(target)
    _offline_demo = True
    return target


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------


def _cached_size_mb(ckpt: Checkpoint) -> float | None:
    from huggingface_hub import scan_cache_dir

    try:
        info = scan_cache_dir(_cache_dir)
    except Exception:  # no cache folder yet
        return None
    for repo in info.repos:
        if repo.repo_id == ckpt.hub_id:
            return repo.size_on_disk / 2**20
    return None


def _cmd_list(_args) -> int:
    print(f"{'name':24} {'hub id':42} {'params':>8} {'fp32 size':>10}  {'revision':10} cached")
    for ckpt in REGISTRY.values():
        cached = _cached_size_mb(ckpt) if ckpt.hub_id else None
        print(
            f"{ckpt.name:24} {ckpt.hub_id or '(not configured)':42} {ckpt.params_millions:>7.0f}M "
            f"{ckpt.params_millions * 4 / 1024:>8.2f} GB  {ckpt.revision:10} "
            f"{f'{cached:.0f} MB' if cached is not None else 'no'}"
        )
        print(f"{'':24} {ckpt.description}")
    return 0


def download(names: list[str] | None = None, out=print) -> int:
    """Fetch the checkpoints' `allow_patterns` files into the cache (all with a hub id by default); return failures."""
    from huggingface_hub import snapshot_download

    failures = 0
    for name in names or [n for n, c in REGISTRY.items() if c.hub_id]:
        ckpt = get(name)
        if not ckpt.hub_id:
            out(f"skip {name}: no hub id configured ({ENV_PROJECTOR_REPO})")
            continue
        try:
            path = snapshot_download(ckpt.hub_id, revision=ckpt.revision, cache_dir=_cache_dir,
                                     allow_patterns=ckpt.allow_patterns)
            out(f"ok   {name}: {ckpt.hub_id}@{ckpt.revision} -> {path}")
        except Exception as error:  # report every checkpoint, then fail once
            failures += 1
            print(f"FAIL {name}: {ckpt.hub_id}: {error}", file=sys.stderr)
    return failures


def _cmd_download(args) -> int:
    return 1 if download(args.names) else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="print every checkpoint with its size and whether it is cached")
    download = sub.add_parser("download", help="prefetch checkpoints into the Hugging Face cache")
    download.add_argument("names", nargs="*", help=f"names to fetch (default: all): {', '.join(REGISTRY)}")
    args = parser.parse_args(argv)
    return {"list": _cmd_list, "download": _cmd_download}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
