"""6.2-6.3's sweep computed: one block size at every position of V-JEPA 2's grid, in one batched device pass.

Every position of one size hides as many tokens, so the positions stack into batches: the full-image targets once (or
from `mae_vs_jepa.TARGET_CACHE`), then the context encoder and the predictor over a batch of positions, and ViT-MAE
over the same batch, sharing the patch embedding (`predict_positions`, the GPU function). On a GPU every position is
one call; on a CPU, where a full-size sweep takes minutes, a call per few positions, so that the page shows how far it
is and a learner's click runs between two calls (`grow`).

What is kept is `block_sweep.BlockSweep`; `mae_vs_jepa.compare` reads it.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from demos import devices, images, jepa, masks
from demos.compute import block_sweep, mae, mae_vs_jepa
from demos.gpu_functions import gpu_task
from demos.noise import Noise

# Context tokens per batch of the encoder (positions x context tokens of each): bounds the activations (ViT-L: 4 kB a
# token and layer in float32, attention on top), whatever the frames.
TOKENS_PER_BATCH = 8192
# Positions per device call on a CPU: a call takes seconds (about 1 s a position for the full-size models at 2
# frames, docs/benchmarks.md), so the page hears how far the sweep is, and a click waits for one call at most.
CPU_POSITIONS_PER_CALL = 8
# A pause between two CPU calls: a click waiting for the device takes it then (a lock does not queue its waiters).
CPU_PAUSE_S = 0.05


@dataclass
class SweepPart:
    """What `predict_positions` returns: CPU tensors and arrays, one row per position."""

    targets: torch.Tensor | None  # (N, D) full-image targets, when they were computed (not passed in)
    positions: np.ndarray  # (P, 2)
    predicted: torch.Tensor  # (P, M, D)
    mae_pixels: np.ndarray  # (P, height*p, width*p, 3) in 0..1
    mae_loss: np.ndarray  # (P,)
    seconds: dict


# The estimates. On a CPU a position costs about one comparison (its context pass, predictor and MAE; batched it
# measured about a third of that, docs/benchmarks.md). On a GPU not measured yet (none was lent): half a comparison's
# context pass a position, batching taking the per-call overhead away; ZeroGPU admits a call by what it asks, so a
# bound asked for 169 positions would cost a learner's quota a large share.
GPU_SHARE_OF_A_PASS = 0.5


def gpu_seconds(view, height, width, positions, num_frames, *, targets=None, **_) -> float:
    """The GPU work `predict_positions` is estimated at."""
    one_pass = mae_vs_jepa.gpu_work_seconds(num_frames, False) - mae_vs_jepa.gpu_work_seconds(num_frames, True)
    return (mae_vs_jepa.GPU_SECONDS_BLOCK + len(positions) * GPU_SHARE_OF_A_PASS * one_pass
            + (0.0 if targets is not None else one_pass))


def cpu_seconds(view, height, width, positions, num_frames, *, targets=None, **_) -> float:
    """The CPU work `predict_positions` is estimated at."""
    extra_pass = mae_vs_jepa.cpu_work_seconds(num_frames, False) - mae_vs_jepa.cpu_work_seconds(num_frames, True)
    return len(positions) * mae_vs_jepa.cpu_work_seconds(num_frames, True) + (0.0 if targets is not None else extra_pass)


def _batches(count: int, per_batch: int) -> Iterator[slice]:
    for start in range(0, count, per_batch):
        yield slice(start, min(start + per_batch, count))


@gpu_task(gpu_seconds=gpu_seconds, cpu_seconds=cpu_seconds)
def predict_positions(view: np.ndarray, height: int, width: int, positions: np.ndarray, num_frames: int, *,
                      targets: torch.Tensor | None = None, jepa_checkpoint: str = mae_vs_jepa.JEPA_CHECKPOINT,
                      mae_checkpoint: str = mae_vs_jepa.MAE_CHECKPOINT) -> SweepPart:
    """The model work of a height x width block at each (top, left) of `positions`, as `mae_vs_jepa.predict_block`
    does it for one: full-image targets (only when `targets` is None), the context encoder on each position's context
    alone and the predictor, batched over positions; MAE on the same blocks, batched too."""
    loaded = jepa.load(jepa_checkpoint)
    model, config = loaded.model, loaded.model.config
    layout = jepa.TokenLayout.of(config, num_frames)
    grid = masks.PatchGrid.square(config.crop_size, config.patch_size)
    blocks = [masks.Block(int(top), int(left), int(height), int(width)) for top, left in positions]
    tokens = [mae_vs_jepa.BlockTokens.of(layout, block.patch_ids(grid)) for block in blocks]
    pixel_values = jepa.clip_tensor(loaded.processor, np.repeat(view[None], num_frames, axis=0))
    seconds = dict.fromkeys(("target_encoder", "context_encoder", "predictor", "mae"), 0.0)

    computed = None
    if targets is None:
        start = time.perf_counter()
        computed = jepa.target_features(model, pixel_values)[0].cpu()
        seconds["target_encoder"] = time.perf_counter() - start
    per_batch = max(1, TOKENS_PER_BATCH // len(tokens[0].context_ids))
    predicted = []
    for batch in _batches(len(tokens), per_batch):
        context_ids = np.stack([t.context_ids for t in tokens[batch]])
        target_ids = np.stack([t.target_ids for t in tokens[batch]])
        start = time.perf_counter()
        context = jepa.context_features(model, pixel_values, context_ids)
        devices.wait_for(model)
        seconds["context_encoder"] += time.perf_counter() - start
        start = time.perf_counter()
        predicted.append(jepa.predict(model, context, context_ids, target_ids, layout.num_tokens).cpu())
        seconds["predictor"] += time.perf_counter() - start

    start = time.perf_counter()
    mae_pixels, mae_loss = _mae_blocks(view, blocks, mae_checkpoint, config.crop_size, per_batch)
    seconds["mae"] = time.perf_counter() - start
    return SweepPart(computed, np.asarray(positions, np.int64).reshape(-1, 2), torch.cat(predicted), mae_pixels,
                     mae_loss, seconds)


def _mae_blocks(view, blocks: list[masks.Block], checkpoint: str, size: int, per_batch: int):
    """MAE's decoder picture inside each block (the others hidden nowhere), and its loss, as `mae.reconstruct`
    computes them for one block: (P, h, w, 3) in 0..1 and (P,)."""
    loaded = mae.load(checkpoint)
    model, processor = loaded.model, loaded.processor
    grid = masks.PatchGrid.square(size, model.config.patch_size)
    square = images.center_square(view, size)
    pixel_values = devices.on_model(model, processor(images=square, do_resize=False, return_tensors="pt")["pixel_values"])
    pixels, losses = [], []
    for batch in _batches(len(blocks), per_batch):
        hidden = np.stack([masks.hidden_mask(grid.num_patches, block.patch_ids(grid)) for block in blocks[batch]])
        with torch.inference_mode():
            logits, loss = mae.masked_forward(model, pixel_values, hidden, loaded.position_layouts)
        pictures = mae.pixels01(model, processor, logits, size)
        for picture, block in zip(pictures, blocks[batch], strict=True):
            y0, x0, y1, x1 = block.pixel_box(grid.patch_size)
            pixels.append(picture[y0:y1, x0:x1])
        losses.append(loss.float().cpu().numpy())
    return np.stack(pixels), np.concatenate(losses)


# ---------------------------------------------------------------------------------------------
# Growing a sweep: the positions in one call on a GPU, a few per call on a CPU
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SweepRequest:
    """The sweep a page asks for: the picture (`mae_vs_jepa.picture`, its noise, frames and models) and its view, the
    block's size, and where the sweep is kept."""

    key: tuple  # `block_sweep.key`
    target_key: tuple  # `mae_vs_jepa.target_key`
    picture: mae_vs_jepa.Picture
    view: np.ndarray  # what both models see, noise included
    height: int
    width: int
    kept_on_disk: bool  # a bundled example at the page's size

    @property
    def num_frames(self) -> int:
        return self.picture.num_frames


def request(image, height, width, *, noise: Noise = Noise(), num_frames: int | None = None,
            jepa_checkpoint: str = mae_vs_jepa.JEPA_CHECKPOINT,
            mae_checkpoint: str = mae_vs_jepa.MAE_CHECKPOINT) -> SweepRequest:
    """The sweep of `image` with `noise` for a height x width block (validated as the comparison validates it:
    `UserError` when it does not fit), V-JEPA 2 fed `num_frames` (None: this device's, as the comparison)."""
    shown = mae_vs_jepa.picture(image, noise=noise, num_frames=num_frames, jepa_checkpoint=jepa_checkpoint,
                                mae_checkpoint=mae_checkpoint)
    loaded = jepa.load(jepa_checkpoint)
    _, block, _ = mae_vs_jepa.block_tokens(loaded.model.config, 0, 0, height, width, shown.num_frames)
    target_key = mae_vs_jepa.target_key(shown.digest, noise, loaded, shown.num_frames)
    features = mae_vs_jepa.TARGET_CACHE.get(target_key, owner=loaded.model)
    return SweepRequest(mae_vs_jepa.sweep_key(target_key, mae_checkpoint, block.height, block.width), target_key,
                        shown, features.view if features else noise.apply(shown.clean.copy()), block.height,
                        block.width, mae_vs_jepa.sweep_kept_on_disk(shown.digest, block.height, block.width))


def grow(asked: SweepRequest, *, still_wanted: Callable[[], bool] = lambda: True) -> Iterator[block_sweep.BlockSweep]:
    """The sweep asked for, as it grows: each step the positions computed so far, the last one complete (and kept:
    in memory, a bundled example's on disk too). One device call on a GPU; on a CPU a call per few positions, and
    it stops early (what it computed kept, for the next run to take up) once `still_wanted()` is False."""
    found = block_sweep.find(asked.key, on_disk=asked.kept_on_disk)
    if found is not None and found.complete:
        yield found
        return
    with block_sweep.STORE.computing(asked.key):  # a second visitor asking for it waits for this one
        sweep = block_sweep.find(asked.key, on_disk=asked.kept_on_disk) or _started(asked)
        if sweep.positions.size:
            yield sweep
        if sweep.complete:
            return
        grid = sweep.grid
        done = {tuple(p) for p in sweep.positions.tolist()}
        todo = np.array([p for p in block_sweep.all_positions(grid, asked.height, asked.width).tolist()
                         if tuple(p) not in done], np.int64).reshape(-1, 2)
        per_call = len(todo) if devices.gpu_at_hand() else CPU_POSITIONS_PER_CALL
        for batch in _batches(len(todo), per_call):
            if not still_wanted():
                return
            part = predict_positions(sweep.view, asked.height, asked.width, todo[batch], asked.num_frames,
                                     targets=sweep.targets, jepa_checkpoint=asked.picture.jepa_checkpoint,
                                     mae_checkpoint=asked.picture.mae_checkpoint)
            sweep = _with_targets(asked, sweep, part).extended(part.positions, part.predicted, part.mae_pixels,
                                                                part.mae_loss, part.seconds)
            block_sweep.grew(asked.key, sweep)
            if sweep.complete:
                block_sweep.STORE.keep(asked.key, sweep, keep_on_disk=asked.kept_on_disk)
            yield sweep
            if not sweep.complete and per_call < len(todo):
                time.sleep(CPU_PAUSE_S)


def shared_first(image, height, width, *, noise: Noise = Noise()) -> bool:
    """Where one GPU call computes it, the sweep every learner drags over (a bundled example at the page's block size,
    without noise) is computed before a comparison of one of its blocks: that comparison and every later one, a
    page's or a script's, then read it with no device call. Elsewhere (a CPU takes minutes for it) nothing: the
    comparison runs alone, and the page grows the sweep after it. Whether the sweep is there now."""
    if noise.kind != Noise().kind:
        return False
    asked = request(image, height, width, noise=noise)
    if not asked.kept_on_disk:
        return False
    found = block_sweep.find(asked.key, on_disk=True)
    if found is not None and found.complete:
        return True
    if not devices.gpu_at_hand():
        return False
    *_, sweep = grow(asked)
    return sweep.complete


def _started(asked: SweepRequest) -> block_sweep.BlockSweep:
    """A sweep with no position yet, with the picture's targets when the cache has them (else the first call
    computes them)."""
    loaded = jepa.load(asked.picture.jepa_checkpoint)
    config = loaded.model.config
    features = mae_vs_jepa.TARGET_CACHE.get(asked.target_key, owner=loaded.model)
    grid = masks.PatchGrid.square(config.crop_size, config.patch_size)
    total = len(block_sweep.all_positions(grid, asked.height, asked.width))
    return block_sweep.BlockSweep(asked.view, features.targets if features else None, asked.height, asked.width,
                                  config.patch_size, asked.num_frames, total)


def _with_targets(asked: SweepRequest, sweep: block_sweep.BlockSweep, part: SweepPart) -> block_sweep.BlockSweep:
    """The sweep holding the targets its first call computed, which the comparison's cache keeps too."""
    if part.targets is None:
        return sweep
    model = jepa.load(asked.picture.jepa_checkpoint).model
    layout = jepa.TokenLayout.of(model.config, asked.num_frames)
    mae_vs_jepa.TARGET_CACHE.put(asked.target_key, mae_vs_jepa.ImageFeatures.of(
        asked.view, part.targets, layout, part.seconds["target_encoder"]), owner=model)
    return dataclasses.replace(sweep, targets=part.targets)
