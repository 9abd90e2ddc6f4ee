"""6.5 compute: attentive probes that share one frozen V-JEPA 2 encoder.

Each probe checkpoint (`VJEPA2ForVideoClassification`) ships a whole V-JEPA 2 model (`.vjepa2`: encoder
and predictor) plus a small attentive pooler and a linear classifier. The probes were trained on a
*frozen* encoder, so their encoder weights should be exactly those of `vjepa2-vitl`. At load time each
probe's encoder is compared tensor by tensor (`torch.equal`) with the base model's:

- equal: the probe's own copy is dropped and `probe.vjepa2` becomes the base `VJEPA2Model` the other
  V-JEPA tabs use. One ViT-L in memory; a clip is encoded once and every head reads the same pass.
- not equal: the probe keeps its own encoder (its unused predictor is dropped), the log and the page say so.

Each probe reads the features it was trained on (`FeatureRecipe`, from facebookresearch/vjepa2's eval
configs): SSv2 the encoder's last block through its final layernorm (what transformers'
`VJEPA2ForVideoClassification.forward` feeds it); Diving48 blocks 17, 19, 21 and 23 of ViT-L's 24, each
through the final layernorm, concatenated along the tokens (`vit_encoder_multiclip_multilevel`), which
transformers' forward does not do. One encoder pass keeps every block the heads reading it need;
passes are cached per encoder and per preprocessed clip (digest of the pixel tensor), so a second head,
a second question or the VQA panel never re-encode a clip that was already seen. The heads' probabilities are
cached with them (`HEAD_CACHE`): asking about a clip that was classified, or asking again, runs no head either.

ZeroGPU (see `checkpoints.preload_all`): the comparison runs when the probe loads (`use_loader`: at start-up there);
frames, preprocessing and the feature cache stay in the main process (`prepare`, `finish`), and one GPU
function per click (`encode_and_classify`) receives the pixels of the passes still missing and the cached
features of the others, and returns the new features and the heads' probabilities, on the CPU.
`prefetch` runs the same function with no heads to fill the cache ahead of a click (`/prepare_clip`).

Sampling (`SAMPLINGS`): one shared clip for both heads (one pass; the CPU default; `shared_clip()`), the clip
each probe was evaluated on (one segment, centre view; the GPU default), or the paper's protocol (segments x 3
spatial views: segments concatenated along the tokens before the pooler, as the probes were trained, and
probabilities averaged over views). No gradio here.
"""

from __future__ import annotations

import gc
import hashlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

import checkpoints
from demos import devices, jepa, labels, videos, zerogpu
from demos.cache import LRUCache
from demos.errors import UserError, number
from demos.gpu_functions import gpu_task

log = logging.getLogger(__name__)

TOP_K = 5
# Passes kept (all encoders together). The paper protocol reads up to 18 (Diving48 alone 12): all of one clip's
# must fit, or a click after its prepare runs some again. Each keeps 1-5 normed blocks, 4-40 MB in bf16.
ENCODER_CACHE_SIZE = 24
MAX_START_S = 3600.0
# The paper protocol spreads its segments over the video from the start time, as the V-JEPA 2 evaluation
# spreads them over a whole (short) dataset clip; a long upload is cut to this window.
MAX_SEGMENT_WINDOW_S = 30.0
NUM_VIEWS = 3  # the paper protocol's spatial views: left, centre and right crops along the long side
REFERENCE_DEPTH = 24  # ViT-L's blocks: the vjepa2 configs name layers of this encoder


@dataclass(frozen=True)
class FeatureRecipe:
    """The encoder features a probe was trained on: these blocks' outputs, each through the encoder's
    final layernorm, concatenated along the token axis (vjepa2 `vision_transformer.py` and
    `vit_encoder_multiclip_multilevel`).

    `blocks_of_24` are 0-based block indices of ViT-L's 24, as the vjepa2 configs write them
    (`out_layers: [17, 19, 21, 23]`). An encoder of another depth reads the same blocks counted from its
    last one, so the tiny test replicas (8 blocks: 1, 3, 5, 7) exercise the same code.
    """

    blocks_of_24: tuple[int, ...]

    def blocks(self, depth: int) -> tuple[int, ...]:
        blocks = tuple(depth - REFERENCE_DEPTH + block for block in self.blocks_of_24)
        if min(blocks) < 0:
            raise ValueError(f"an encoder of {depth} blocks has no block {min(blocks)}: it needs at least "
                             f"{REFERENCE_DEPTH - min(self.blocks_of_24)}")
        return blocks


@dataclass(frozen=True)
class ProbeSpec:
    name: str  # checkpoint name in `checkpoints.REGISTRY`
    title: str
    task: str
    num_frames: int  # frames per clip at evaluation
    frame_step: int  # take every `frame_step`-th frame of the video
    segments: int  # clips per video in training and evaluation, concatenated along the tokens
    recipe: FeatureRecipe


PROBES: tuple[ProbeSpec, ...] = (
    ProbeSpec("vjepa2-ssv2-probe", "Something-Something v2",
              "174 everyday hand-object actions (“pushing something from left to right”)", 16, 4, 2,
              FeatureRecipe((23,))),  # configs/eval/vitl/ssv2.yaml: the last block, normed
    ProbeSpec("vjepa2-diving48-probe", "Diving48",
              "48 competition dives (take-off, somersaults, twists, body position)", 32, 2, 4,
              FeatureRecipe((17, 19, 21, 23))),  # configs/eval/vitl/diving48.yaml: out_layers
)
PROBE_NAMES = [spec.name for spec in PROBES]
SAMPLING_AUTO = "auto"  # the device's default (see `resolve_sampling`)
SAMPLING_SHARED = "shared"  # one clip for every head (`shared_clip()`): a single encoder pass
SAMPLING_PER_PROBE = "per_probe"  # each probe's frames and step: one segment, the centre view
SAMPLING_PAPER = "paper"  # each probe's segments x 3 views, as V-JEPA 2 evaluated them
GPU_SHARED_CLIP = (16, 4)  # SSv2's evaluation clip
# On a CPU the shared clip covers the same stretch of video (about 2 s at 30 fps) in half the frames: 4 tubelets,
# as 6.4 uses there. On the 2-core CPU one 8-frame ViT-L pass took 2.7 s against 6.6-7.1 s for 16, and Diving48's
# pooler 2.8 s against 8.4 s (README, Benchmarks); both probes were evaluated on more frames (see the notes).
CPU_SHARED_CLIP = (8, 8)
SAMPLINGS = (SAMPLING_AUTO, SAMPLING_SHARED, SAMPLING_PER_PROBE, SAMPLING_PAPER)


def spec(name: str) -> ProbeSpec:
    for probe in PROBES:
        if probe.name == name:
            return probe
    raise UserError(f"Unknown probe '{name}'. Choose one of: {', '.join(PROBE_NAMES)}.")


def resolve_sampling(sampling: str) -> tuple[str, str]:
    """(sampling actually used, why). "auto" follows the latency budgets: a click should answer within
    seconds on a CPU, within a second on a GPU (README, Benchmarks). On a CPU one ViT-L pass takes seconds
    (8 frames about 3 s), so "auto" is one shared pass of `shared_clip()`; the paper protocol's up to 18 passes
    and Diving48's 65,536-token pooler would take minutes. On an H200 each probe's own clip took 0.35 s for a
    clip just picked and the paper protocol 2 s, so "auto" is each probe's clip there, and the paper protocol
    (the setting the published accuracies hold for) stays a choice."""
    if sampling != SAMPLING_AUTO:
        return sampling, "chosen"
    if devices.models_on_gpu():
        return SAMPLING_PER_PROBE, ("automatic: on a GPU each probe's own clip answers within a second; the "
                                    "paper protocol takes about 2 s")
    return SAMPLING_SHARED, ("automatic: on a CPU one shared encoder pass keeps a click within seconds; "
                             "the paper protocol would take minutes")


def shared_clip() -> tuple[int, int]:
    """(frames, step) of the shared clip on this device (`devices.models_on_gpu`: known without loading)."""
    return GPU_SHARED_CLIP if devices.models_on_gpu() else CPU_SHARED_CLIP


def sampling_for(probe: ProbeSpec, sampling: str) -> tuple[int, int]:
    """(frames, step) of each clip a probe reads: the one shared clip, or its evaluation clip."""
    return shared_clip() if sampling == SAMPLING_SHARED else (probe.num_frames, probe.frame_step)


def protocol_cost(sampling: str, views: int = NUM_VIEWS) -> dict:
    """Encoder passes and tokens a (resolved) sampling costs for both probes at the published geometry (256-pixel
    crop, 16-pixel patches, tubelets of 2), and the most tokens one pooler reads. `views` distinct views: 3 for a
    non-square video, 1 for a square one."""
    encoder = checkpoints.get(jepa.CHECKPOINT)
    per_tubelet, tubelet = encoder.patches_per_side ** 2, encoder.tubelet_size
    passes: dict[tuple[int, int], int] = {}
    pooler = 0
    for probe in PROBES:
        frames, step = sampling_for(probe, sampling)
        segments = probe.segments if sampling == SAMPLING_PAPER else 1
        passes[(frames, step)] = segments * (views if sampling == SAMPLING_PAPER else 1)
        pooler = max(pooler, frames // tubelet * per_tubelet * len(probe.recipe.blocks_of_24) * segments)
    tokens = sum(count * (frames // tubelet) * per_tubelet for (frames, _), count in passes.items())
    return {"encoder_passes": sum(passes.values()), "encoder_tokens": tokens, "largest_pooler_input": pooler}


# ---------------------------------------------------------------------------------------------
# One encoder for every head
# ---------------------------------------------------------------------------------------------


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
    spec: ProbeSpec
    model: torch.nn.Module  # VJEPA2ForVideoClassification; `.vjepa2` is the base model when shared
    processor: object  # the probe's own video processor (resize, centre crop, normalise)
    comparison: EncoderComparison

    @property
    def shares_encoder(self) -> bool:
        return self.comparison.equal

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
    for name in names or PROBE_NAMES:
        probe_spec = spec(name)
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


for _name in PROBE_NAMES:
    checkpoints.use_loader(_name, _load_probe)


def resident_encoders(heads: list[Head]) -> int:
    """How many distinct encoders are in memory for these heads (the base model's counts once)."""
    return len({id(head.encoder) for head in heads} | {id(jepa.load().model.encoder)})


# ---------------------------------------------------------------------------------------------
# Encoder features, cached per encoder and per clip
# ---------------------------------------------------------------------------------------------


def clip_digest(pixel_values_videos: torch.Tensor) -> str:
    """Content hash of a preprocessed clip (shape and values): the encoder cache key of `encode`."""
    array = pixel_values_videos.detach().to("cpu", torch.float32).contiguous().numpy()
    return hashlib.sha1(repr(array.shape).encode() + array.tobytes()).hexdigest()[:16]


class ClipToEncode(NamedTuple):
    """A clip as the main process plans its pass: the cache key, and how to preprocess it if the cache lacks it."""

    key: str
    frames: np.ndarray  # (T, H, W, 3) uint8, as the processor receives them
    processor: object
    cropped: bool  # True: frames already at the model's square, the processor only normalises (`jepa.clip_tensor`)

    def pixels(self) -> torch.Tensor:
        if self.cropped:
            return jepa.clip_tensor(self.processor, self.frames)
        return self.processor(videos=[self.frames], return_tensors="pt")["pixel_values_videos"]


def clip_to_encode(frames: np.ndarray, processor, *, cropped: bool = False) -> ClipToEncode:
    """The encoder cache key of a clip: a hash of the uint8 frames the processor receives, with its settings.
    Computed before preprocessing (a quarter of the bytes of the float pixels), so a cached clip is never
    preprocessed again: on an H200 the paper protocol's preprocessing and hashing were most of a cached click.
    Content, not file path: a prepare and a click agree on "the same clip" whatever the upload's name."""
    frames = np.ascontiguousarray(frames)
    settings = f"{frames.shape}|{cropped}|{_processor_key(processor)}".encode()
    key = hashlib.sha1(settings + frames.tobytes()).hexdigest()[:16]
    return ClipToEncode(key, frames, processor, cropped)


def depth(encoder: torch.nn.Module) -> int:
    return len(encoder.layer)


@dataclass
class EncodedClip:
    layers: dict[int, torch.Tensor]  # block index -> (1, N, D) its output through the final layernorm
    last_block: int  # the encoder's last block: `layers[last_block]` is `last_hidden_state`
    seconds: float  # how long the encoder forward took when it ran
    cached: bool  # True: this call reused features computed earlier

    @property
    def tokens(self) -> torch.Tensor:
        """The encoder's output (`last_hidden_state`): what the projector and the SSv2 probe read."""
        return self.layers[self.last_block]

    def features(self, blocks: tuple[int, ...]) -> torch.Tensor:
        """(1, len(blocks) * N, D): the blocks' normed outputs concatenated along the tokens."""
        return torch.cat([self.layers[block] for block in blocks], dim=1)


# Encoder features per (encoder, clip), on the CPU, in the main process (on ZeroGPU filled from what the GPU
# functions return); an entry is tied to its encoder, so a reloaded model never reuses it.
TOKEN_CACHE = LRUCache(ENCODER_CACHE_SIZE)
# Each head's output per clip (the pass keys it read, view by view), on the CPU, in the main process. An entry is
# tied to the probe's model and served only while every pass it read is still in `TOKEN_CACHE`: the features
# it was computed from are known to be the current encoder's for these pixels.
HEAD_CACHE = LRUCache(2 * ENCODER_CACHE_SIZE)


@torch.inference_mode()
def _normed_blocks(encoder: torch.nn.Module, pixel_values_videos: torch.Tensor, blocks: set[int]) -> dict:
    """The encoder's forward (embeddings, blocks, final layernorm), keeping each listed block's normed output.

    Stops after the deepest listed block; `layers[last]` equals `encoder(...).last_hidden_state`.
    """
    hidden = encoder.embeddings(devices.on_model(encoder, pixel_values_videos))
    kept = {}
    for index, layer in enumerate(encoder.layer[: max(blocks) + 1]):
        hidden = layer(hidden, None)[0]
        if index in blocks:
            kept[index] = encoder.layernorm(hidden)
    return kept


def encoder_pass(encoder: torch.nn.Module, pixel_values_videos: torch.Tensor, blocks) -> tuple[dict, float]:
    """Model work (inside a GPU function): the normed outputs of `blocks`, on the CPU, and the pass's seconds."""
    start = time.perf_counter()
    layers = {block: tensor.cpu() for block, tensor in _normed_blocks(encoder, pixel_values_videos, set(blocks)).items()}
    return layers, time.perf_counter() - start


def lookup(encoder: torch.nn.Module, digest: str, blocks=None) -> tuple[EncodedClip | None, set[int]]:
    """Main process: the clip's cached features when they hold every block asked for (default: the last),
    else None and the blocks a new pass must keep (those asked for and those cached: an entry only grows)."""
    last = depth(encoder) - 1
    wanted = set(blocks) if blocks else {last}
    cached = TOKEN_CACHE.get((id(encoder), digest), owner=encoder)
    if cached is not None and wanted <= set(cached[0]):
        return EncodedClip(cached[0], last, cached[1], cached=True), wanted
    return None, wanted | (set(cached[0]) if cached is not None else set())


def store(encoder: torch.nn.Module, digest: str, layers: dict, seconds: float) -> EncodedClip:
    """Main process: keep the features of a pass that a GPU function ran."""
    TOKEN_CACHE.put((id(encoder), digest), (layers, seconds), owner=encoder)
    return EncodedClip(layers, depth(encoder) - 1, seconds, cached=False)


def encode(encoder: torch.nn.Module, pixel_values_videos: torch.Tensor, digest: str | None = None,
           blocks: tuple[int, ...] | set[int] | None = None) -> EncodedClip:
    """The normed outputs of `blocks` (default: the last block) for a clip: one pass per (encoder, clip).

    A cached pass that lacks a block asked for now runs again, keeping what it had and the new blocks.
    In-process only (tests, benchmarks): the app's GPU functions run `encoder_pass`, and their callers
    keep what they return (`lookup`, `store`).
    """
    digest = digest or clip_digest(pixel_values_videos)
    hit, wanted = lookup(encoder, digest, blocks)
    return hit or store(encoder, digest, *encoder_pass(encoder, pixel_values_videos, wanted))


# ---------------------------------------------------------------------------------------------
# Views, labels and heads
# ---------------------------------------------------------------------------------------------


def spatial_views(frames: np.ndarray, size: int, count: int = NUM_VIEWS) -> list[np.ndarray]:
    """The paper protocol's views: short side resized to `size`, then `count` size x size crops spread
    along the long side (left, centre, right), at offsets `i * (spare // (count - 1))` as vjepa2's
    `EvalVideoTransform` (`evals/video_classification_frozen/utils.py`) floors them: the right-hand view
    may stop a few pixels short of the edge. A square video has `count` identical views (the encoder
    cache then runs one pass for them)."""
    clip = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()
    height, width = clip.shape[-2:]
    scale = size / min(height, width)
    new_size = (max(size, round(height * scale)), max(size, round(width * scale)))
    clip = F.interpolate(clip, size=new_size, mode="bilinear", antialias=True, align_corners=False)
    clip = clip.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    long_axis = 1 if new_size[0] > new_size[1] else 2
    spare = clip.shape[long_axis] - size
    offsets = [i * (spare // (count - 1)) for i in range(count)] if count > 1 else [spare // 2]
    return [np.ascontiguousarray(clip[:, o:o + size] if long_axis == 1 else clip[:, :, o:o + size])
            for o in offsets]


class TopLabel(NamedTuple):
    label: str  # as a learner reads it (`demos.labels.readable_label`)
    probability: float
    index: int
    raw: str  # the checkpoint's own `id2label` name


def top_labels(probs: torch.Tensor, id2label: dict[int, str], k: int = TOP_K) -> list[TopLabel]:
    """The k most probable classes, most probable first, from a probability vector."""
    values, indices = probs.detach().float().reshape(-1).topk(min(k, probs.numel()))
    result, seen = [], set()
    for value, index in zip(values.tolist(), indices.tolist(), strict=True):
        raw = id2label.get(index, f"LABEL_{index}")
        name = labels.readable_label(raw, index)
        if name in seen:  # gr.Label keys must be unique
            name = f"{name} [class {index}]"
        seen.add(name)
        result.append(TopLabel(name, float(value), index, raw))
    return result


@torch.inference_mode()
def head_logits(head: Head, features: torch.Tensor) -> torch.Tensor:
    """The probe's attentive pooler and linear classifier on its features: what the probe adds."""
    model = head.model
    return model.classifier(model.pooler(devices.on_model(model.pooler, features)))


@dataclass
class EncoderPass:
    clip: str  # "16 frames, step 4" (+ segment and view in the paper protocol)
    num_frames: int
    frame_step: int
    timestamps_s: list[float]
    encoder: str  # "shared V-JEPA 2 encoder" or "<hub id>'s own encoder"
    heads: list[str]  # probe titles that read these features
    blocks: list[int]  # encoder blocks whose normed outputs this pass kept
    seconds: float
    cached: bool
    num_tokens: int


@dataclass
class HeadResult:
    name: str
    title: str
    hub_id: str
    ranked: list[TopLabel]
    seconds: float  # poolers + classifiers (one per view)
    encoder_passes: list[int]  # indices into Classification.passes, in the order the pooler read them
    shares_encoder: bool
    blocks: list[int]  # the encoder blocks its features come from
    pooler_tokens: int  # tokens one pooler call read (blocks x segments x tokens per clip)
    views: int
    probs: torch.Tensor = field(repr=False)  # class probabilities (averaged over views) `ranked` was read from
    cached: bool = False  # True: this call reused the head's output computed earlier on the same features

    @property
    def top(self) -> list[tuple[str, float]]:
        return [(t.label, t.probability) for t in self.ranked]


@dataclass
class Classification:
    heads: list[HeadResult]
    passes: list[EncoderPass]
    sampling: str
    sampling_reason: str
    start_s: float
    notes: list[str]
    preprocess_seconds: float
    encoders_in_memory: int

    def label_dicts(self) -> dict[str, dict[str, float]]:
        return {head.name: dict(head.top) for head in self.heads}

    @property
    def encoder_runs(self) -> int:
        return sum(not p.cached for p in self.passes)

    @property
    def head_runs(self) -> int:
        return sum(not h.cached for h in self.heads)

    def timings(self) -> dict:
        """Plain numbers for the API and the page."""
        return {
            "sampling": self.sampling,
            "sampling_reason": self.sampling_reason,
            "start_s": self.start_s,
            "encoders_in_memory": self.encoders_in_memory,
            "encoder_passes_run": self.encoder_runs,
            "encoder_passes_reused": len(self.passes) - self.encoder_runs,
            "heads_run": self.head_runs,
            "heads_reused": len(self.heads) - self.head_runs,
            "preprocess_s": round(self.preprocess_seconds, 4),
            "encoder_passes": [
                {"clip": p.clip, "num_frames": p.num_frames, "frame_step": p.frame_step, "encoder": p.encoder,
                 "heads": p.heads, "blocks": p.blocks, "seconds": round(p.seconds, 4), "cached": p.cached,
                 "tokens": p.num_tokens, "timestamps_s": [round(t, 3) for t in p.timestamps_s]}
                for p in self.passes
            ],
            "heads": {h.name: {"title": h.title, "hub_id": h.hub_id, "seconds": round(h.seconds, 4), "cached": h.cached,
                               "encoder_passes": h.encoder_passes, "shares_encoder": h.shares_encoder,
                               "blocks": h.blocks, "pooler_tokens": h.pooler_tokens, "views": h.views,
                               "top": [t._asdict() for t in h.ranked]}
                      for h in self.heads},
            "notes": list(self.notes),
        }


def validate_request(video_path, start_s, sampling: str = SAMPLING_AUTO) -> tuple[str, float, str]:
    """(video path, start in seconds, sampling) checked once, by the handler; `classify` trusts them."""
    if video_path is None:
        raise UserError("No video: upload a clip, record one or pick an example first.")
    start_s = number("The start time (seconds)", 0.0 if start_s is None else start_s, minimum=0, maximum=MAX_START_S)
    if sampling not in SAMPLINGS:
        raise UserError(f"Unknown sampling '{sampling}'. Choose one of: {', '.join(SAMPLINGS)}.")
    return video_path, start_s, sampling


def segment_starts(video_path, start_s: float, probe: ProbeSpec, sampling: str) -> list[float]:
    """Where each clip a probe reads begins: `start_s`, or (paper protocol) the starts of equal parts of the
    video from `start_s` (at most `MAX_SEGMENT_WINDOW_S`), one clip at the start of each part, as the vjepa2
    evaluation loader does without random sampling. Clips overlap when a part is shorter than a clip."""
    if sampling != SAMPLING_PAPER or probe.segments == 1:
        return [start_s]
    info = videos.probe_video(video_path)
    window = min(max(info.duration_s - start_s, 0.0), MAX_SEGMENT_WINDOW_S)
    return [start_s + window * i / probe.segments for i in range(probe.segments)]


# ---------------------------------------------------------------------------------------------
# One click: frames, preprocessing and the cache in the main process; one GPU function for the models
# ---------------------------------------------------------------------------------------------


@dataclass
class PassInput:
    """One encoder pass as a GPU function receives it (CPU values only)."""

    encoder_of: str  # checkpoint whose encoder reads the clip: a probe (the shared one when it shares) or the base
    blocks: tuple[int, ...]  # the blocks whose normed outputs the pass keeps
    num_frames: int  # frames of the clip: what a pass costs (`published_tokens`)
    pixels: torch.Tensor | None  # (1, T, 3, S, S): the pass still has to run
    layers: dict[int, torch.Tensor] | None = None  # block -> (1, N, D): the cached features; no pass runs

    @property
    def runs(self) -> bool:
        return self.pixels is not None


@dataclass
class HeadsInput:
    """What `encode_and_classify` receives: every encoder pass, per probe still to run its views' pass indices,
    and the probabilities of the probes whose output is cached (they do not run again)."""

    passes: list[PassInput]
    plans: dict[str, list[list[int]]]  # probe name -> per view, the passes whose features it concatenates
    cached_probs: dict[str, torch.Tensor] = field(default_factory=dict)  # probe name -> its cached probabilities

    @property
    def runs(self) -> bool:
        """Whether there is model work at all: an encoder pass or a head still to run."""
        return bool(self.plans) or any(item.runs for item in self.passes)


@dataclass
class HeadsPass:
    """What `encode_and_classify` returns: CPU tensors."""

    layers: dict[int, dict[int, torch.Tensor]]  # pass index -> its features, for the passes that ran
    encoder_seconds: dict[int, float]
    probs: dict[str, torch.Tensor]  # probe name -> class probabilities, averaged over views (float32); every probe
    head_seconds: dict[str, float]  # poolers + classifiers (one per view), for the probes that ran
    pooler_tokens: dict[str, int]  # tokens one pooler call read, for the probes that ran


class HeadOutput(NamedTuple):
    """A head's output on one clip, as `HEAD_CACHE` keeps it (CPU)."""

    probs: torch.Tensor
    seconds: float
    pooler_tokens: int


def encoder_of(name: str) -> torch.nn.Module:
    """The encoder that `PassInput.encoder_of` names (resident lookups only)."""
    return jepa.load().model.encoder if name == jepa.CHECKPOINT else load_heads([name])[0].encoder


# Measured on an H200 in bf16 (bench_gpu), as for 6.4: one ViT-L pass over 2,048 tokens (16 frames) 0.04-0.07 s,
# over 4,096 tokens 0.04-0.06 s; 0.15 s is 3x. Attention grows faster than the tokens: the power 1.5.
GPU_SECONDS_PER_PASS_2048_TOKENS = 0.15
# A head per view: SSv2's pooler and classifier took 0.002 s a view, Diving48's 0.12 s a view at its 65,536
# tokens in the paper protocol, growing with the square of the tokens (3 self-attention blocks over all of them).
GPU_SECONDS_PER_HEAD_VIEW = 0.05
GPU_SECONDS_POOLER_65536_TOKENS = 0.4
# Measured on the 2-core development CPU in bf16 (bench_heads, bench_app): one ViT-L pass over 1,024 tokens 2.7 s,
# over 2,048 6.6-7.1 s (the power 1.35); a head's pooler over 1,024 tokens 0.35 s, 4,096 2.8 s, 8,192 8.4 s (1.55).
CPU_SECONDS_PER_PASS_1024_TOKENS, CPU_PASS_POWER = 2.7, 1.35
CPU_SECONDS_POOLER_4096_TOKENS, CPU_POOLER_POWER = 2.8, 1.55


def published_tokens(frames: int) -> int:
    """A clip's tokens for the published ViT-L (256 px, 16-pixel patches, tubelets of 2), whatever the model loaded
    here: the estimates below are of the published checkpoints' work, the work a Space does."""
    encoder = checkpoints.get(jepa.CHECKPOINT)
    return max(1, frames // encoder.tubelet_size) * encoder.patches_per_side ** 2


def pass_seconds(item: PassInput) -> float:
    """The estimated GPU work of one encoder pass: none when its features come from the cache."""
    return GPU_SECONDS_PER_PASS_2048_TOKENS * (published_tokens(item.num_frames) / 2048) ** 1.5 if item.runs else 0.0


def pass_cpu_seconds(item: PassInput) -> float:
    """The estimated CPU work of one encoder pass: none when its features come from the cache."""
    tokens = published_tokens(item.num_frames)
    return CPU_SECONDS_PER_PASS_1024_TOKENS * (tokens / 1024) ** CPU_PASS_POWER if item.runs else 0.0


def _views(work: HeadsInput):
    """The pooler input of every head view still to run, in tokens."""
    for name, plan in work.plans.items():
        blocks = len(spec(name).recipe.blocks_of_24)
        for view in plan:
            yield blocks * sum(published_tokens(work.passes[i].num_frames) for i in view)


def heads_seconds(work: HeadsInput) -> float:
    """The estimated GPU work of `run_heads`: the passes still missing and every head's views."""
    return sum(pass_seconds(item) for item in work.passes) + sum(
        GPU_SECONDS_PER_HEAD_VIEW + GPU_SECONDS_POOLER_65536_TOKENS * (tokens / 65536) ** 2 for tokens in _views(work))


def heads_cpu_seconds(work: HeadsInput) -> float:
    """The estimated CPU work of `run_heads`: the passes still missing and every head's views."""
    return sum(pass_cpu_seconds(item) for item in work.passes) + sum(
        CPU_SECONDS_POOLER_4096_TOKENS * (tokens / 4096) ** CPU_POOLER_POWER for tokens in _views(work))


def run_heads(work: HeadsInput) -> HeadsPass:
    """Model work: the encoder passes still missing, then each head still to run: its pooler and classifier once
    per view on its features (its segments concatenated along the tokens), the views' probabilities averaged.
    No plans (`prefetch`, or every head cached): only the passes. The probabilities hold every probe, the cached
    ones included, in `PROBE_NAMES` order."""
    heads = {head.spec.name: head for head in load_heads(list(work.plans))} if work.plans else {}
    read = {index for plan in work.plans.values() for view in plan for index in view}
    new_layers, encoder_seconds, on_device = {}, {}, {}
    for index, item in enumerate(work.passes):
        if not item.runs and index not in read:
            continue
        encoder = encoder_of(item.encoder_of)
        if item.runs:
            new_layers[index], encoder_seconds[index] = encoder_pass(encoder, item.pixels, item.blocks)
        layers = new_layers[index] if item.runs else item.layers
        if index in read:
            on_device[index] = {block: devices.on_model(encoder, tensor) for block, tensor in layers.items()}
    probs, head_seconds, pooler_tokens = dict(work.cached_probs), {}, {}
    for name, plan in work.plans.items():
        head = heads[name]
        blocks = head.spec.recipe.blocks(depth(head.encoder))
        started = time.perf_counter()
        view_probs = []
        for view in plan:
            features = torch.cat([on_device[index][block] for index in view for block in blocks], dim=1)
            pooler_tokens[name] = int(features.shape[1])
            view_probs.append(torch.softmax(head_logits(head, features).float(), dim=-1))
        probs[name] = torch.stack(view_probs).mean(dim=0).reshape(-1).cpu()  # vjepa2 eval.py: views average probabilities
        head_seconds[name] = time.perf_counter() - started
    probs = {name: probs[name] for name in PROBE_NAMES if name in probs}
    return HeadsPass(new_layers, encoder_seconds, probs, head_seconds, pooler_tokens)


@gpu_task(gpu_seconds=heads_seconds, cpu_seconds=heads_cpu_seconds)
def encode_and_classify(work: HeadsInput) -> HeadsPass:
    """The model work of one click (see `run_heads`)."""
    return run_heads(work)


@dataclass
class _PassPlan:
    """Main process: what one encoder pass is about, to read the GPU function's answer."""

    encoder: torch.nn.Module
    digest: str
    clip: str
    sample: videos.FrameSample
    step: int
    heads: list[str]
    blocks: set[int]
    hit: EncodedClip | None = None


@dataclass
class HeadsRequest:
    """Main process: a click prepared (frames read, clips preprocessed, the cache looked up)."""

    work: HeadsInput  # what the GPU function receives
    heads: list[Head]
    passes: list[_PassPlan]
    plans: dict[str, list[list[int]]]  # every probe's plan (`work.plans` holds only those still to run)
    head_keys: dict[str, tuple]  # probe name -> its `HEAD_CACHE` key: the pass keys it reads, view by view
    cached_heads: dict[str, HeadOutput]  # the probes whose output on these features is cached
    sampling: str
    sampling_reason: str
    start_s: float
    notes: list[str]
    preprocess_seconds: float


def prepare(video_path, start_s: float = 0.0, *, sampling: str = SAMPLING_AUTO,
            names: list[str] | None = None) -> HeadsRequest:
    """Main process: read frames once per distinct (frames, step, start), preprocess each distinct clip once,
    and plan one encoder pass per distinct (encoder, clip) keeping every block the heads reading it need;
    a pass whose features are cached carries them instead of its pixels, and a head whose output on those cached
    features is cached does not run again."""
    sampling, reason = resolve_sampling(sampling)
    heads = load_heads(names)
    samples: dict[tuple, videos.FrameSample] = {}
    views_of: dict[tuple, list[np.ndarray]] = {}
    clips: dict[tuple, ClipToEncode] = {}
    notes: list[str] = []
    preprocess_seconds = 0.0
    plans: dict[str, list[list[tuple]]] = {}  # per head, per view, per segment: the pass key it reads
    pass_meta: dict[tuple, dict] = {}
    for head in heads:
        frames, step = sampling_for(head.spec, sampling)
        views = NUM_VIEWS if sampling == SAMPLING_PAPER else 1
        plan = [[] for _ in range(views)]
        starts = segment_starts(video_path, start_s, head.spec, sampling)
        for segment, segment_start in enumerate(starts):
            sample_key = (frames, step, round(segment_start, 6))
            if sample_key not in samples:
                samples[sample_key] = videos.sample_frames(video_path, start_s=segment_start, num_frames=frames,
                                                          frame_step=step)
                notes.extend(note for note in samples[sample_key].notes if note not in notes)
            sample = samples[sample_key]
            for view in range(views):
                processor_key = (sample_key, view, views, _processor_key(head.processor))
                if processor_key not in clips:
                    started = time.perf_counter()
                    if sampling == SAMPLING_PAPER:
                        views_key = (sample_key, head.model.config.crop_size)
                        if views_key not in views_of:  # the three views at once: one resize of the frames
                            views_of[views_key] = spatial_views(sample.frames, head.model.config.crop_size)
                        clips[processor_key] = clip_to_encode(views_of[views_key][view], head.processor, cropped=True)
                    else:
                        clips[processor_key] = clip_to_encode(sample.frames, head.processor)
                    preprocess_seconds += time.perf_counter() - started
                clip = clips[processor_key]
                pass_key = (id(head.encoder), clip.key)
                meta = pass_meta.setdefault(pass_key, {
                    "head": head, "clip_to_encode": clip, "sample": sample, "step": step, "blocks": set(),
                    "heads": [], "clip": _clip_text(frames, step, segment, len(starts), view, views)})
                meta["blocks"] |= set(head.spec.recipe.blocks(depth(head.encoder)))
                if head.spec.title not in meta["heads"]:
                    meta["heads"].append(head.spec.title)
                plan[view].append(pass_key)
        plans[head.spec.name] = plan

    order = list(pass_meta)
    inputs, passes = [], []
    for (_, digest), meta in pass_meta.items():
        head = meta["head"]
        hit, wanted = lookup(head.encoder, digest, meta["blocks"])
        started = time.perf_counter()
        pixels = None if hit else meta["clip_to_encode"].pixels()  # only a pass that runs is preprocessed
        preprocess_seconds += time.perf_counter() - started
        inputs.append(PassInput(head.spec.name, tuple(sorted(wanted)),
                                len(meta["clip_to_encode"].frames), pixels, hit.layers if hit else None))
        passes.append(_PassPlan(head.encoder, digest, meta["clip"], meta["sample"], meta["step"], meta["heads"],
                                meta["blocks"], hit))
    indices = {name: [[order.index(key) for key in view] for view in plan] for name, plan in plans.items()}
    head_keys = {name: (name, tuple(tuple(view) for view in plan)) for name, plan in plans.items()}
    cached_heads = {}
    for head in heads:
        name = head.spec.name
        if all(passes[index].hit for view in indices[name] for index in view):
            cached = HEAD_CACHE.get(head_keys[name], owner=head.model)
            if cached is not None:
                cached_heads[name] = cached
    work = HeadsInput(inputs, {name: plan for name, plan in indices.items() if name not in cached_heads},
                      {name: output.probs for name, output in cached_heads.items()})
    notes.extend(_sampling_notes(sampling, heads))
    return HeadsRequest(work, heads, passes, indices, head_keys, cached_heads, sampling, reason, start_s, notes,
                        preprocess_seconds)


def finish(request: HeadsRequest, result: HeadsPass) -> Classification:
    """Main process: keep the passes and heads that ran (`TOKEN_CACHE`, `HEAD_CACHE`) and read the heads' results."""
    passes: list[EncoderPass] = []
    for index, (plan, item) in enumerate(zip(request.passes, request.work.passes, strict=True)):
        head = next(h for h in request.heads if h.spec.name == item.encoder_of)
        encoded = (store(plan.encoder, plan.digest, result.layers[index], result.encoder_seconds[index])
                   if item.runs else plan.hit)
        passes.append(EncoderPass(
            clip=plan.clip, num_frames=len(plan.sample.frames), frame_step=plan.step,
            timestamps_s=[float(t) for t in plan.sample.timestamps_s],
            encoder="shared V-JEPA 2 encoder" if head.shares_encoder else f"{head.hub_id}'s own encoder",
            heads=plan.heads, blocks=sorted(plan.blocks), seconds=encoded.seconds, cached=encoded.cached,
            num_tokens=int(next(iter(encoded.layers.values())).shape[1])))
    results = []
    for head in request.heads:
        name, plan = head.spec.name, request.plans[head.spec.name]
        output = request.cached_heads.get(name) or _keep_head(request, head, result)
        results.append(HeadResult(
            name, head.spec.title, head.hub_id, top_labels(output.probs, head.id2label), output.seconds,
            sorted({index for view in plan for index in view}), head.shares_encoder,
            list(head.spec.recipe.blocks(depth(head.encoder))), output.pooler_tokens, len(plan), output.probs,
            cached=name in request.cached_heads))
    return Classification(results, passes, request.sampling, request.sampling_reason, request.start_s,
                          request.notes, request.preprocess_seconds, resident_encoders(request.heads))


def _keep_head(request: HeadsRequest, head: Head, result: HeadsPass) -> HeadOutput:
    """Main process: a head's output from what the GPU function returned, kept in `HEAD_CACHE`."""
    name = head.spec.name
    output = HeadOutput(result.probs[name], result.head_seconds[name], result.pooler_tokens[name])
    HEAD_CACHE.put(request.head_keys[name], output, owner=head.model)
    return output


def classify(video_path, start_s: float = 0.0, *, sampling: str = SAMPLING_AUTO,
             names: list[str] | None = None) -> Classification:
    """Top-5 actions of every probe for the clip starting at `start_s`, with honest timings.

    Frames, preprocessing and the caches stay in the main process (`prepare`, `finish`); the model work is one
    GPU function (`encode_and_classify`), which encodes only the clips not cached yet and runs only the heads
    whose output is not cached; with nothing to run it is not called. Arguments as `validate_request` returns them.
    """
    request = prepare(video_path, start_s, sampling=sampling, names=names)
    return finish(request, encode_and_classify(request.work) if request.work.runs else run_heads(request.work))


def prefetch(video_path, start_s: float = 0.0, *, sampling: str = SAMPLING_AUTO,
             still_wanted: Callable[[], bool] = lambda: True) -> dict:
    """Fill the caches for the clips the heads will read (`/prepare_clip`), so that `classify` (and VQA's
    grounded mode, which classifies the same way) then runs only the heads, or, on a CPU, nothing at all.
    Arguments as `validate_request` returns them. Nothing runs for passes and heads already cached.

    The missing passes run through `encode_and_classify` with no heads. Off ZeroGPU one pass per call, and
    `still_wanted()` is asked before and after each: a clip that is no longer the learner's current one stops
    between passes and keeps nothing (it would only push wanted features out of the cache). On ZeroGPU every
    missing pass goes in one call (each call asks for its own GPU time). On a CPU the heads run too, one per
    call in the same way: there they take seconds (Diving48's pooler about 8 s on 2 cores for a 16-frame clip),
    and a click or a question on the clip needs them whatever it asks; on a GPU they take a fraction of a second
    and the prepare's GPU time stays the passes'. On a CPU the paper protocol (minutes) is not prepared: it would
    hold the models for everyone; a click runs it.
    """
    request = prepare(video_path, start_s, sampling=sampling)
    missing = [index for index, item in enumerate(request.work.passes) if item.runs]
    numbers = {"sampling": request.sampling, "sampling_reason": request.sampling_reason,
               "encoder_passes": len(missing), "encoder_passes_run": 0,
               "encoder_passes_reused": len(request.work.passes) - len(missing), "heads_run": 0, "stale": False,
               "skipped": "", "seconds": 0.0}
    if missing and request.sampling == SAMPLING_PAPER and not devices.models_on_gpu():
        return {**numbers, "skipped": "the paper protocol takes minutes on a CPU; it runs when you click"}
    if missing and not zerogpu.worth_preparing():
        return {**numbers, "skipped": "on ZeroGPU the click encodes the clip in its own GPU call"}
    batches = [missing] if zerogpu.ON_ZERO_GPU else [[index] for index in missing]
    for batch in batches if missing else []:
        if not still_wanted():
            return {**numbers, "stale": True}
        result = encode_and_classify(HeadsInput([request.work.passes[index] for index in batch], {}))
        if not still_wanted():
            return {**numbers, "stale": True}
        for position, index in enumerate(batch):
            plan = request.passes[index]
            store(plan.encoder, plan.digest, result.layers[position], result.encoder_seconds[position])
            numbers["seconds"] = round(numbers["seconds"] + result.encoder_seconds[position], 4)
        numbers["encoder_passes_run"] += len(batch)
    if devices.models_on_gpu() or request.sampling == SAMPLING_PAPER:
        return numbers
    request = prepare(video_path, start_s, sampling=sampling)  # the passes come from the cache now
    for head in request.heads:
        if head.spec.name not in request.work.plans:  # its output on these features is cached
            continue
        if not still_wanted():
            return {**numbers, "stale": True}
        result = encode_and_classify(HeadsInput(request.work.passes, {head.spec.name: request.work.plans[head.spec.name]}))
        if not still_wanted():
            return {**numbers, "stale": True}
        _keep_head(request, head, result)
        numbers["seconds"] = round(numbers["seconds"] + result.head_seconds[head.spec.name], 4)
        numbers["heads_run"] += 1
    return numbers


def _processor_key(processor) -> str:
    return repr(processor.to_dict()) if hasattr(processor, "to_dict") else str(id(processor))


def _clip_text(frames: int, step: int, segment: int, segments: int, view: int, views: int) -> str:
    text = f"{frames} frames, step {step}"
    if segments > 1:
        text += f", segment {segment + 1}/{segments}"
    if views > 1:
        text += f", view {('left', 'centre', 'right')[view] if views == 3 else view + 1}"
    return text


def _sampling_notes(sampling: str, heads: list[Head]) -> list[str]:
    if sampling == SAMPLING_SHARED:
        frames, step = shared_clip()
        others = [f"{h.spec.title} on {h.spec.segments} segment{'s' if h.spec.segments > 1 else ''} of "
                  f"{h.spec.num_frames} frames (step {h.spec.frame_step})"
                  for h in heads if (h.spec.num_frames, h.spec.frame_step, h.spec.segments) != (frames, step, 1)]
        if others:
            return [f"Every head read one {frames}-frame clip (step {step}); the probes were trained and evaluated "
                    f"on other clips ({'; '.join(others)}), so their scores may differ from the published "
                    "accuracies."]
    if sampling == SAMPLING_PER_PROBE:
        return ["Each probe read one segment of its evaluation clip (centre view); the probes were trained and "
                "evaluated on several segments (SSv2 2, Diving48 4) and 3 views: choose the paper protocol for that."]
    return []


def grounding(probs: dict[str, torch.Tensor]) -> dict[str, list[tuple[str, float]]]:
    """Probe results as the VQA module's grounded prompt wants them: {probe title: [(label, prob), ...]}, from
    {probe name: class probabilities} (`HeadsPass.probs`, `HeadResult.probs`)."""
    heads = {head.spec.name: head for head in load_heads(list(probs))}
    return {f"{heads[name].spec.title} probe": [(t.label, t.probability) for t in top_labels(p, heads[name].id2label)]
            for name, p in probs.items()}
