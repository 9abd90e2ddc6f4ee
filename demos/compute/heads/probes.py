"""6.5: the attentive probes (which checkpoint, which encoder features, which clips) and how a video is sampled
for them.

Each probe checkpoint (`VJEPA2ForVideoClassification`) ships a whole V-JEPA 2 model plus a small attentive pooler
and a linear classifier, trained on a frozen encoder (`shared_encoder` shares that encoder). Each
probe reads the features it was trained on (`FeatureRecipe`, from facebookresearch/vjepa2's eval configs): SSv2
the encoder's last block through its final layernorm (what transformers' `VJEPA2ForVideoClassification.forward`
feeds it); Diving48 blocks 17, 19, 21 and 23 of ViT-L's 24, each through the final layernorm, concatenated along
the tokens (`vit_encoder_multiclip_multilevel`), which transformers' forward does not do.

Sampling (`SAMPLINGS`): one shared clip for both heads (one pass; the CPU default; `shared_clip()`), the clip
each probe was evaluated on (one segment, centre view; the GPU default), or the paper's protocol (segments x 3
spatial views, `segment_starts` and `spatial_views`: segments concatenated along the tokens before the pooler,
as the probes were trained, and probabilities averaged over views). No gradio here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

import checkpoints
from demos import devices, jepa, videos
from demos.errors import UserError, number

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
# as 6.4 uses there. Half the tokens take well under half the time in the encoder and in Diving48's pooler (see
# docs/benchmarks.md); both probes were evaluated on more frames (see the notes).
CPU_SHARED_CLIP = (8, 8)
SAMPLINGS = (SAMPLING_AUTO, SAMPLING_SHARED, SAMPLING_PER_PROBE, SAMPLING_PAPER)


def spec(name: str) -> ProbeSpec:
    for probe in PROBES:
        if probe.name == name:
            return probe
    raise UserError(f"Unknown probe '{name}'. Choose one of: {', '.join(PROBE_NAMES)}.")


def resolve_sampling(sampling: str) -> tuple[str, str]:
    """(sampling actually used, why). "auto" follows the latency budgets: a click should answer within
    seconds on a CPU, within a second on a GPU (figures in docs/benchmarks.md). On a CPU one ViT-L pass takes
    seconds, so "auto" is one shared pass of `shared_clip()`; the paper protocol's up to 18 passes and Diving48's
    65,536-token pooler would take minutes. On a GPU each probe's own clip fits the budget and the paper protocol
    does not, so "auto" is each probe's clip there, and the paper protocol (the setting the published accuracies
    hold for) stays a choice."""
    if sampling != SAMPLING_AUTO:
        return sampling, "chosen"
    if devices.models_on_gpu():
        return SAMPLING_PER_PROBE, ("automatic: on a GPU each probe's own clip answers within a second; the "
                                    "paper protocol takes longer")
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


def validate_request(video_path, start_s, sampling: str = SAMPLING_AUTO) -> tuple[str, float, str]:
    """(video path, start in seconds, sampling) checked once, by the handler; `classification.classify` trusts them."""
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
