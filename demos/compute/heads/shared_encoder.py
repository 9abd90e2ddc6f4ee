"""6.5: one frozen V-JEPA 2 encoder for every probe.

Each probe checkpoint (`VJEPA2ForVideoClassification`) ships a whole V-JEPA 2 model (`.vjepa2`: encoder
and predictor). The probes were trained on a *frozen* encoder, so their encoder weights should be exactly those
of `vjepa2-vitl`. At load time each probe's encoder is compared tensor by tensor (`torch.equal`) with the base
model's:

- equal: the probe's own copy is dropped and `probe.vjepa2` becomes the base `VJEPA2Model` the other
  V-JEPA tabs use. One ViT-L in memory; a clip is encoded once and every head reads the same pass.
- not equal: the probe keeps its own encoder (its unused predictor is dropped), the log and the page say so.

On ZeroGPU (see demos/startup.py) the comparison runs when the probe loads (`use_loader`: at start-up there), never
inside a GPU function.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from dataclasses import dataclass

import torch

import checkpoints
from demos import jepa
from demos.compute.heads import features, probes

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EncoderComparison:
    equal: bool
    num_tensors: int
    first_difference: str | None  # the first tensor that differs, and how; None when equal
    seconds: float

    def sentence(self) -> str:
        if self.equal:
            return f"all {self.num_tensors} encoder tensors are identical"
        return f"the encoders differ ({self.first_difference})"


def compare_encoders(encoder: torch.nn.Module, reference: torch.nn.Module) -> EncoderComparison:
    """`torch.equal` on every tensor of two encoders' state dicts (names, shapes, dtypes and values)."""
    start = time.perf_counter()
    mine, theirs = encoder.state_dict(), reference.state_dict()
    difference = None
    if mine.keys() != theirs.keys():
        missing = sorted(set(theirs) ^ set(mine))
        difference = f"tensor names differ, e.g. {missing[0]}"
    else:
        for key, tensor in mine.items():
            other = theirs[key]
            if tensor.shape != other.shape:
                difference = f"{key}: shape {tuple(tensor.shape)} vs {tuple(other.shape)}"
            elif tensor.dtype != other.dtype:
                difference = f"{key}: dtype {tensor.dtype} vs {other.dtype}"
            elif not torch.equal(tensor, other.to(tensor.device)):
                delta = (tensor.float() - other.to(tensor.device).float()).abs().max().item()
                difference = f"{key}: values differ (largest difference {delta:.3g})"
            if difference:
                break
    return EncoderComparison(difference is None, len(mine), difference, time.perf_counter() - start)


@dataclass
class Head:
    spec: probes.ProbeSpec
    model: torch.nn.Module  # VJEPA2ForVideoClassification; `.vjepa2` is the base model when shared
    processor: object  # the probe's own video processor (resize, centre crop, normalise)
    comparison: EncoderComparison

    @property
    def shares_encoder(self) -> bool:
        return self.comparison.equal

    @property
    def backbone(self) -> torch.nn.Module:
        """The `VJEPA2Model` whose encoder this head reads (the base model when shared; its predictor unused)."""
        return self.model.vjepa2

    @property
    def blocks(self) -> tuple[int, ...]:
        """The encoder blocks whose normed outputs this head reads (its `probes.FeatureRecipe`)."""
        return self.spec.recipe.blocks(features.depth(self.backbone))

    @property
    def encoder(self) -> torch.nn.Module:
        return self.model.vjepa2.encoder

    @property
    def hub_id(self) -> str:
        return checkpoints.get(self.spec.name).hub_id

    @property
    def id2label(self) -> dict[int, str]:
        return {int(k): v for k, v in self.model.config.id2label.items()}


_setup_lock = threading.Lock()


def attach_shared_encoder(probe: torch.nn.Module, base: torch.nn.Module) -> EncoderComparison:
    """Compare the probe's encoder with the base model's; when equal, make the probe use the base model.

    After sharing, `probe(pixel_values_videos)` still works (it calls the base `VJEPA2Model` with
    `skip_predictor=True`) and the probe's duplicate encoder and predictor are freed. When the weights
    differ the probe keeps its own encoder; only its predictor, which classification never runs, is dropped.
    """
    comparison = compare_encoders(probe.vjepa2.encoder, base.encoder)
    hub_id = getattr(probe.config, "_name_or_path", "") or type(probe).__name__
    if comparison.equal:
        probe.vjepa2 = base
        log.info("Probe %s: %s with the base V-JEPA 2 encoder (checked in %.2f s); sharing one encoder",
                 hub_id, comparison.sentence(), comparison.seconds)
    else:
        probe.vjepa2.predictor = None  # VJEPA2Model.forward(skip_predictor=True) never reads it
        log.warning("Probe %s: %s; it keeps its own encoder (one more ViT in memory, one more pass per clip)",
                    hub_id, comparison.sentence())
    gc.collect()
    return comparison


def load_heads(names: list[str] | None = None) -> list[Head]:
    """The probes, each wired to the shared encoder where its weights allow (checked once per loaded model,
    kept as `Loaded.encoder_comparison`; again if the base model was reloaded)."""
    base = jepa.load().model
    heads = []
    for name in names or probes.PROBE_NAMES:
        probe_spec = probes.spec(name)
        loaded = checkpoints.load(name)
        with _setup_lock:
            comparison = loaded.encoder_comparison
            if comparison is None or (comparison.equal and loaded.model.vjepa2 is not base):
                loaded.encoder_comparison = attach_shared_encoder(loaded.model, base)
        heads.append(Head(probe_spec, loaded.model, loaded.processor, loaded.encoder_comparison))
    return heads


def _load_probe(name: str) -> checkpoints.Loaded:
    """A probe with its encoder compared and shared: what ZeroGPU's start-up (`preload_all`) runs, so that
    the comparison, which reads every encoder weight, happens then and never inside a GPU function."""
    load_heads([name])
    return checkpoints.load(name)


for _name in probes.PROBE_NAMES:
    checkpoints.use_loader(_name, _load_probe)


def resident_encoders(heads: list[Head]) -> int:
    """How many distinct encoders are in memory for these heads (the base model's counts once)."""
    return len({id(head.encoder) for head in heads} | {id(jepa.load().model.encoder)})


def backbone_of(name: str) -> torch.nn.Module:
    """The `VJEPA2Model` whose encoder `features.PassInput.encoder_of` names (resident lookups only; a probe that is
    not needed is not looked up: on ZeroGPU's CPU it may have no copy)."""
    return jepa.load().model if name == jepa.CHECKPOINT else load_heads([name])[0].backbone
