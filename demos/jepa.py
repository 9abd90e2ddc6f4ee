"""V-JEPA 2 the way the chapter means it: encode the visible context alone, predict the hidden part's embedding.

transformers' `VJEPA2Model.forward(context_mask=..., target_mask=...)` runs the encoder on the whole
clip and applies the masks afterwards, so the context has already attended to the hidden region: the
answer leaks. Here the context encoder embeds the patches, keeps only the context tokens and runs the
encoder layers on them (with their true positions for RoPE), as V-JEPA 2 training does. The target is
the layer-normalised (no affine) encoder output of the full clip, the training target (L1 loss).
The code follows transformers 5.23 (requirements.txt pins it); each function names the forward it follows.

Shared by the image comparison (6.2-6.3) and the tube-masking tab (6.4). Tensors in, tensors out.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

import checkpoints
from demos import devices

log = logging.getLogger(__name__)

CHECKPOINT = "vjepa2-vitl"
_check_lock = threading.Lock()


@dataclass(frozen=True)
class TokenLayout:
    """How a clip's tokens are laid out: time-major, `id = t * rows * cols + row * cols + col`."""

    tubelets: int
    rows: int
    cols: int
    tubelet_size: int  # frames per tubelet
    patch_size: int  # pixels

    @property
    def tokens_per_tubelet(self) -> int:
        return self.rows * self.cols

    @property
    def num_tokens(self) -> int:
        return self.tubelets * self.tokens_per_tubelet

    @classmethod
    def of(cls, config, num_frames: int) -> TokenLayout:
        grid = config.crop_size // config.patch_size
        # Fewer frames than a tubelet are repeated by the embeddings, so they still make one tubelet.
        return cls(max(num_frames // config.tubelet_size, 1), grid, grid, config.tubelet_size, config.patch_size)


def load(name: str = CHECKPOINT) -> checkpoints.Loaded:
    """The V-JEPA 2 checkpoint, with the predictor's mask token checked once (`Loaded.mask_token_copied`)."""
    loaded = checkpoints.load(name)
    with _check_lock:
        if loaded.mask_token_copied is None:
            loaded.mask_token_copied = use_trained_mask_token(loaded.model)
    return loaded


checkpoints.use_loader(CHECKPOINT, load)  # ZeroGPU start-up runs the mask-token check too (it writes a weight)


def use_trained_mask_token(model) -> bool:
    """The predictor always uses mask token 1. If that one is untrained (zero) but token 0 is not, copy 0 into 1.

    Returns True when the copy was made. Runs in memory only; the checkpoint on disk is untouched.
    """
    tokens = model.predictor.embeddings.mask_tokens
    norms = tokens.detach().float().flatten(1).norm(dim=1)
    log.info("V-JEPA 2 predictor mask-token norms: %s", [round(float(n), 4) for n in norms])
    if len(norms) > 1 and norms[1] < 1e-6 <= norms[0]:
        with torch.no_grad():
            tokens[1].copy_(tokens[0])
        log.warning("Predictor mask token 1 is untrained; using mask token 0 in its place")
        return True
    return False


def clip_tensor(processor, frames: np.ndarray) -> torch.Tensor:
    """(T, S, S, 3) uint8 frames, already cropped to the model's square, -> normalised (1, T, 3, S, S).

    Resizing and cropping happen before (`images.center_square`), so that the picture the learner
    clicks on is exactly the picture the model sees; the processor only normalises.
    """
    batch = processor(videos=[frames], do_resize=False, do_center_crop=False, return_tensors="pt")
    return batch["pixel_values_videos"]


@torch.inference_mode()
def target_features(model, pixel_values_videos: torch.Tensor) -> torch.Tensor:
    """(1, N, D) float32: the full clip's encoder output (`VJEPA2Encoder.forward`), layer-normalised without affine
    (the training target)."""
    hidden = model.encoder(pixel_values_videos=devices.on_model(model, pixel_values_videos)).last_hidden_state
    return F.layer_norm(hidden.float(), (hidden.shape[-1],))


@torch.inference_mode()
def context_features(model, pixel_values_videos: torch.Tensor, context_ids) -> torch.Tensor:
    """(B, K, D): the encoder run on the context tokens alone; hidden tokens never enter attention. context_ids:
    (K,) for one context, or (B, K) for B contexts of the same clip (a sweep over positions), batched.

    Follows `VJEPA2Encoder.forward` (transformers 5.23: embeddings, `VJEPA2Layer`s, layernorm), with the context
    tokens gathered after the embeddings and their ids passed to each layer as `position_mask`, as the library's
    `VJEPA2Predictor.forward` does for its own tokens; tests/test_jepa.py checks it against the library's encoder.
    """
    ids = devices.on_model(model, torch.as_tensor(np.asarray(context_ids), dtype=torch.long))
    ids = ids[None] if ids.ndim == 1 else ids
    encoder = model.encoder
    hidden = encoder.embeddings(devices.on_model(model, pixel_values_videos))  # (1, N, D): once for every context
    hidden = torch.gather(hidden.expand(len(ids), -1, -1), 1, ids[..., None].expand(-1, -1, hidden.shape[-1]))
    for layer in encoder.layer:
        hidden = layer(hidden, position_mask=ids)[0]  # true positions for RoPE
    return encoder.layernorm(hidden)


@torch.inference_mode()
def predict(model, context: torch.Tensor, context_ids, target_ids, num_tokens: int) -> torch.Tensor:
    """(B, M, D) float32: the predictor's embedding for each target id, from the context features only. The ids are
    (K,) and (M,) for one context, or (B, K) and (B, M) for B contexts (`context`: (B, K, D)).

    The library's `VJEPA2Predictor.forward` (transformers 5.23), called as `VJEPA2Model.forward` calls it. It
    gathers its context from a full-length sequence by `context_mask`, so the context features are scattered back
    to their ids first (the other slots stay zero and are never read).
    """
    ctx_ids = devices.on_model(model, torch.as_tensor(np.asarray(context_ids), dtype=torch.long))
    tgt_ids = devices.on_model(model, torch.as_tensor(np.asarray(target_ids), dtype=torch.long))
    ctx_ids, tgt_ids = (ids[None] if ids.ndim == 1 else ids for ids in (ctx_ids, tgt_ids))
    full = context.new_zeros(len(ctx_ids), num_tokens, context.shape[-1])
    full.scatter_(1, ctx_ids[..., None].expand(-1, -1, context.shape[-1]), context)
    out = model.predictor(encoder_hidden_states=full, context_mask=[ctx_ids], target_mask=[tgt_ids])
    return out.last_hidden_state.float()


def targets_context_predict(model, pixel_values_videos: torch.Tensor, context_ids, target_ids, *,
                            need_targets: bool) -> tuple[torch.Tensor | None, torch.Tensor, dict]:
    """One JEPA step, timed: the full input's targets (only when `need_targets`; callers cache them), the
    context encoder on the context tokens alone, then the predictor for the target ids.

    Returns (targets (N, D) or None, predicted (M, D), seconds {"targets", "context_encoder",
    "predictor"}), tensors on the CPU.
    """
    seconds, targets = {"targets": 0.0}, None  # 0.0: the targets came from the caller's cache
    if need_targets:
        start = time.perf_counter()
        targets = target_features(model, pixel_values_videos)[0].cpu()
        seconds["targets"] = time.perf_counter() - start
    start = time.perf_counter()
    context = context_features(model, pixel_values_videos, context_ids)
    devices.wait_for(model)  # the context stays on the device: stop its timer when it is done
    seconds["context_encoder"] = time.perf_counter() - start
    start = time.perf_counter()
    num_tokens = TokenLayout.of(model.config, pixel_values_videos.shape[1]).num_tokens
    predicted = predict(model, context, context_ids, target_ids, num_tokens)[0].cpu()
    seconds["predictor"] = time.perf_counter() - start
    return targets, predicted, seconds


def cosine_rows(a, b) -> np.ndarray:
    """Row-wise cosine similarity of two (M, D) arrays or tensors."""
    a = torch.as_tensor(np.asarray(a, dtype=np.float32) if not torch.is_tensor(a) else a).float()
    b = torch.as_tensor(np.asarray(b, dtype=np.float32) if not torch.is_tensor(b) else b).float()
    return F.cosine_similarity(a, b, dim=-1).cpu().numpy()
