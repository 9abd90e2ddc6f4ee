"""6.2-6.3, noise no one can predict: the same hidden block over a few levels of film grain or JPEG compression.

For each level, from the clean picture to the learner's (`Noise.levels`), both models see the noisy picture:
- MAE's pixel error in the block, against its target, which is now the noisy picture, beside the added
  noise itself (its mean square in the block): the part of that target no context can tell;
- how far V-JEPA 2's target moves: the cosine of the block's target embeddings in the clean and in the
  noisy picture; and the predictor's cosine with its (noisy) target.

`sweep` is the computation (an image array, the block and a `Noise` in; a `NoiseSweep` out). Its model work
is one GPU call for every level (`predict_levels`); the full-image targets are cached per image and level
(`mae_vs_jepa.TARGET_CACHE`), so moving the block reruns only the context encoder, the predictor and MAE, and
a level the comparison just ran for this block (the page runs it first) is not run again (`BLOCK_CACHE`).
The tab (`demos.tabs.mae_vs_jepa`) names the endpoint `/noise_sweep`.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import numpy as np
import torch

from demos import images, jepa, masks
from demos.compute import mae_vs_jepa
from demos.errors import whole_number
from demos.gpu_functions import gpu_task
from demos.noise import Noise, added_noise_mse

MAX_LEVELS = 6  # the clean picture and up to 5 noisy ones: each costs a context pass, the predictor and MAE
# The clean picture, half the learner's level and the level itself: fewer would leave no curve to see. Each level
# costs about one comparison (context encoder, predictor, MAE, and a target pass for a picture new at that level), so
# each one more makes a CPU click wait noticeably longer (bench.bench_mae_vs_jepa times them; docs/benchmarks.md); on
# the page the comparison's own level comes from the cache.
DEFAULT_LEVELS = 3


@dataclass
class SweepLevel:
    noise: Noise
    mae_pixel_mse: float  # MAE's error in the block against the noisy picture (pixels in 0..1)
    noise_mse: float  # the added noise's own mean square in the block: what no model could predict
    target_cosine: float  # the block's target embeddings, noisy vs clean picture (1: the target did not move)
    predictor_cosine: float  # the predictor's embeddings vs the noisy picture's targets
    target_cache_hit: bool
    block_cache_hit: bool  # this level of this block was computed before (the comparison, a sweep): no model ran now


@dataclass
class NoiseSweep:
    block: masks.Block
    noise: Noise  # the learner's level, the last of `levels`
    levels: list[SweepLevel]
    seconds: dict
    num_frames: int = mae_vs_jepa.CPU_FRAMES  # the frames of V-JEPA 2's static clip (as the comparison's)

    def stats(self) -> dict:
        """Plain numbers for the API: one list entry per level, the clean picture first."""
        series = {name: [getattr(level, name) for level in self.levels]
                  for name in ("mae_pixel_mse", "noise_mse", "target_cosine", "predictor_cosine", "target_cache_hit",
                               "block_cache_hit")}
        return {
            "noise": self.noise.kind,
            "block": dataclasses.asdict(self.block),
            "num_frames": self.num_frames,
            "levels": [{"label": level.noise.label, "level": level.noise.level} for level in self.levels],
            **series,
            "seconds": {k: round(v, 4) for k, v in self.seconds.items()},
        }


def gpu_seconds(views, patch_ids, context_ids, target_ids, num_frames, *, targets, **_) -> float:
    """The GPU work `predict_levels` is estimated at: each level's comparison."""
    return sum(mae_vs_jepa.gpu_work_seconds(num_frames, t is not None) for t in targets)


def cpu_seconds(views, patch_ids, context_ids, target_ids, num_frames, *, targets, **_) -> float:
    """The CPU work `predict_levels` is estimated at: each level's comparison."""
    return sum(mae_vs_jepa.cpu_work_seconds(num_frames, t is not None) for t in targets)


@gpu_task(gpu_seconds=gpu_seconds, cpu_seconds=cpu_seconds)
def predict_levels(views: list[np.ndarray], patch_ids, context_ids, target_ids, num_frames: int, *,
                   targets: list, jepa_checkpoint: str = mae_vs_jepa.JEPA_CHECKPOINT,
                   mae_checkpoint: str = mae_vs_jepa.MAE_CHECKPOINT) -> list[mae_vs_jepa.BlockPass]:
    """`mae_vs_jepa.predict_block` for each view (one per level), in one GPU call; `targets[i]` None: compute them."""
    return [mae_vs_jepa.predict_block.plain(view, patch_ids, context_ids, target_ids, num_frames, targets=cached,
                                            jepa_checkpoint=jepa_checkpoint, mae_checkpoint=mae_checkpoint)
            for view, cached in zip(views, targets, strict=True)]


def _level_passes(keys, cached, known, views, tokens, num_frames, model, jepa_checkpoint, mae_checkpoint):
    """Each level's model work: `known` where this block of that picture ran before (the block cache, a sweep),
    the others in one GPU call (and cached). Returns (passes, which were known, seconds summed over the levels)."""
    passes = list(known)
    block_hits = [device_pass is not None for device_pass in passes]
    todo = [i for i, done in enumerate(block_hits) if not done]
    start = time.perf_counter()
    if todo:
        computed = predict_levels([views[i] for i in todo], tokens.patch_ids, tokens.context_ids, tokens.target_ids,
                                  num_frames, targets=[cached[i].targets if cached[i] else None for i in todo],
                                  jepa_checkpoint=jepa_checkpoint, mae_checkpoint=mae_checkpoint)
        for i, device_pass in zip(todo, computed, strict=True):
            passes[i] = device_pass
            mae_vs_jepa.keep_pass(keys[i], tokens.patch_ids, mae_checkpoint, device_pass, model)
    seconds = {"gpu_call": time.perf_counter() - start}
    for device_pass in passes:
        for stage, value in device_pass.seconds.items():
            seconds[stage] = seconds.get(stage, 0.0) + value
    return passes, block_hits, seconds


def sweep(image, top, left, height, width, noise: Noise, levels=DEFAULT_LEVELS, *,
          num_frames: int | None = None, jepa_checkpoint: str = mae_vs_jepa.JEPA_CHECKPOINT,
          mae_checkpoint: str = mae_vs_jepa.MAE_CHECKPOINT) -> NoiseSweep:
    """Hide the (top, left, height, width) block (in patches) of `image` at `levels` levels of `noise`, the
    clean picture first, V-JEPA 2 fed `num_frames` frames (None: this device's, `mae_vs_jepa.default_frames`, as the
    comparison). Raises `UserError` for a clean `noise`, a bad level count or an impossible block."""
    num_frames = mae_vs_jepa.default_frames() if num_frames is None else int(num_frames)
    count = whole_number("The number of noise levels", levels, minimum=2, maximum=MAX_LEVELS)
    steps = noise.levels(count)
    loaded = jepa.load(jepa_checkpoint)
    model, config = loaded.model, loaded.model.config
    grid, block, tokens = mae_vs_jepa.block_tokens(config, top, left, height, width, num_frames)

    digest = images.image_digest(image)
    keys = [mae_vs_jepa.target_key(digest, step, loaded, num_frames) for step in steps]
    # Each level's features and block work as far as known (the caches, or a sweep of the picture at that level).
    known = [mae_vs_jepa.known_work(key, digest, block, tokens, mae_checkpoint, model) for key in keys]
    cached = [features for features, _, _ in known]
    clean = np.array(images.center_square(image, config.crop_size))
    views = [hit.view if hit else step.apply(clean) for hit, step in zip(cached, steps, strict=True)]
    passes, block_hits, seconds = _level_passes(keys, cached, [work for _, work, _ in known], views, tokens,
                                                num_frames, model, jepa_checkpoint, mae_checkpoint)
    features = [hit or mae_vs_jepa.keep_targets(key, view, device_pass, tokens.layout, model)
                for hit, key, view, device_pass in zip(cached, keys, views, passes, strict=True)]

    ids = torch.as_tensor(tokens.target_ids)
    clean_targets = features[0].targets[ids]
    pixels = mae_vs_jepa.block_pixels(grid, tokens.patch_ids)
    results = [SweepLevel(step, device_pass.reconstruction.hidden_mse, added_noise_mse(clean, feats.view, pixels),
                          float(jepa.cosine_rows(feats.targets[ids], clean_targets).mean()),
                          float(jepa.cosine_rows(device_pass.predicted, feats.targets[ids]).mean()), hit is not None,
                          block_hit)
               for step, device_pass, feats, hit, block_hit in zip(steps, passes, features, cached, block_hits,
                                                                   strict=True)]
    return NoiseSweep(block, noise, results, seconds, num_frames)
