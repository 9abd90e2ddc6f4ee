"""Encoder features, cached per encoder and per clip: what the 6.5 heads and the VQA panel read.

One encoder pass keeps every block the heads reading it need, each through the encoder's final layernorm
(`encoder_pass`). Passes are cached per encoder and per preprocessed clip (`clip_to_encode` hashes the frames the
processor receives), so a second head, a second question or the VQA panel never re-encode a clip that was already
seen. The cache (`TOKEN_CACHE`) lives in the main process, on the CPU: on ZeroGPU a GPU function receives the
pixels of a pass still missing or the cached features (`PassInput`), and returns new features for the main
process to keep (`lookup`, `store`).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch

from demos import jepa
from demos.cache import LRUCache

# Passes kept (all encoders together). The paper protocol reads up to 18 (Diving48 alone 12): all of one clip's
# must fit, or a click after its prepare runs some again. Each keeps 1-5 normed blocks, 4-40 MB in bf16.
ENCODER_CACHE_SIZE = 24


def processor_key(processor) -> str:
    return repr(processor.to_dict()) if hasattr(processor, "to_dict") else str(id(processor))


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
    preprocessed again: otherwise preprocessing and hashing would be most of a cached click on a GPU.
    Content, not file path: a prepare and a click agree on "the same clip" whatever the upload's name."""
    frames = np.ascontiguousarray(frames)
    settings = f"{frames.shape}|{cropped}|{processor_key(processor)}".encode()
    key = hashlib.sha1(settings + frames.tobytes()).hexdigest()[:16]
    return ClipToEncode(key, frames, processor, cropped)


def depth(model: torch.nn.Module) -> int:
    """Blocks of a `VJEPA2Model`'s encoder."""
    return len(model.encoder.layer)


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


# Encoder features per (model, clip), on the CPU, in the main process (on ZeroGPU filled from what the GPU
# functions return); an entry is tied to its `VJEPA2Model`, so a reloaded model never reuses it. A probe that
# shares the base encoder has the base model as its `.vjepa2`: the same entries.
TOKEN_CACHE = LRUCache(ENCODER_CACHE_SIZE)


@torch.inference_mode()
def _normed_blocks(model: torch.nn.Module, pixel_values_videos: torch.Tensor, blocks: set[int]) -> dict:
    """The encoder's forward, keeping each listed block's output through the final layernorm.

    Follows `VJEPA2Encoder.forward` (transformers 5.23), which applies `encoder.layernorm` to the last block's output
    only: the other blocks' outputs come from `output_hidden_states` and are normed here with the same layernorm,
    as vjepa2's `vit_encoder_multiclip_multilevel` does. With indices, `output_hidden_states` keeps only those
    blocks' outputs (index i + 1 is block i's; 0 the embeddings); `layers[last]` equals `last_hidden_state`.
    The pixels go to the model's own device and dtype (transformers' `device` and `dtype` of a `PreTrainedModel`).
    """
    out = model(pixel_values_videos=pixel_values_videos.to(model.device, model.dtype), skip_predictor=True,
                output_hidden_states=[block + 1 for block in sorted(blocks)])
    return {block: model.encoder.layernorm(out.hidden_states[block + 1]) for block in blocks}


def encoder_pass(model: torch.nn.Module, pixel_values_videos: torch.Tensor, blocks) -> tuple[dict, float]:
    """Model work (inside a GPU function): the normed outputs of `blocks` of a `VJEPA2Model`'s encoder, on the CPU,
    and the pass's seconds."""
    start = time.perf_counter()
    layers = {block: tensor.cpu() for block, tensor in _normed_blocks(model, pixel_values_videos, set(blocks)).items()}
    return layers, time.perf_counter() - start


def lookup(model: torch.nn.Module, digest: str, blocks=None) -> tuple[EncodedClip | None, set[int]]:
    """Main process: the clip's cached features when they hold every block asked for (default: the last),
    else None and the blocks a new pass must keep (those asked for and those cached: an entry only grows)."""
    last = depth(model) - 1
    wanted = set(blocks) if blocks else {last}
    cached = TOKEN_CACHE.get((id(model), digest), owner=model)
    if cached is not None and wanted <= set(cached[0]):
        return EncodedClip(cached[0], last, cached[1], cached=True), wanted
    return None, wanted | (set(cached[0]) if cached is not None else set())


def store(model: torch.nn.Module, digest: str, layers: dict, seconds: float) -> EncodedClip:
    """Main process: keep the features of a pass that a GPU function ran."""
    TOKEN_CACHE.put((id(model), digest), (layers, seconds), owner=model)
    return EncodedClip(layers, depth(model) - 1, seconds, cached=False)


def encode(model: torch.nn.Module, pixel_values_videos: torch.Tensor, digest: str | None = None,
           blocks: tuple[int, ...] | set[int] | None = None) -> EncodedClip:
    """The normed outputs of `blocks` (default: the last block) for a clip: one pass per (`VJEPA2Model`, clip).

    A cached pass that lacks a block asked for now runs again, keeping what it had and the new blocks.
    In-process only (tests, benchmarks): the app's GPU functions run `encoder_pass`, and their callers
    keep what they return (`lookup`, `store`).
    """
    digest = digest or clip_digest(pixel_values_videos)
    hit, wanted = lookup(model, digest, blocks)
    return hit or store(model, digest, *encoder_pass(model, pixel_values_videos, wanted))


@dataclass
class PassInput:
    """One encoder pass as a GPU function receives it (CPU values only)."""

    encoder_of: str  # checkpoint whose encoder reads the clip: a probe (the base one when it shares) or the base
    blocks: tuple[int, ...]  # the blocks whose normed outputs the pass keeps
    num_frames: int  # frames of the clip: what a pass costs (`probe_work.published_tokens`)
    pixels: torch.Tensor | None  # (1, T, 3, S, S): the pass still has to run
    layers: dict[int, torch.Tensor] | None = None  # block -> (1, N, D): the cached features; no pass runs

    @property
    def runs(self) -> bool:
        return self.pixels is not None
