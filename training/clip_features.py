"""The projector's training data, step one: each example's clip through the frozen V-JEPA 2 encoder, once, cached on
disk, so that later epochs and later runs touch neither videos nor the encoder.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator


def frames_from_video(video: Any, *, num_frames: int, frame_step: int, dataset_id: str | None = None) -> np.ndarray:
    """(T, H, W, 3) uint8 frames from a dataset cell: an array, a file path, a path inside the
    dataset's Hub repo, or a `{"path", "bytes"}` dict (a `datasets.Video(decode=False)` cell)."""
    if isinstance(video, np.ndarray):
        return video
    # demos.videos decodes with PyAV; imported here so that training on cached features needs no decoder.
    from demos.videos import sample_frames

    if isinstance(video, dict):
        if video.get("bytes"):
            suffix = Path(video.get("path") or "clip.mp4").suffix or ".mp4"
            with tempfile.NamedTemporaryFile(suffix=suffix) as handle:
                handle.write(video["bytes"])
                handle.flush()
                return sample_frames(handle.name, start_s=0, num_frames=num_frames, frame_step=frame_step).frames
        video = video.get("path")
    if isinstance(video, str) and not os.path.exists(video) and dataset_id:
        from huggingface_hub import hf_hub_download

        video = hf_hub_download(dataset_id, filename=video, repo_type="dataset")
    if not isinstance(video, str):
        raise ValueError(f"cannot read a video from a {type(video).__name__}")
    return sample_frames(video, start_s=0, num_frames=num_frames, frame_step=frame_step).frames


@torch.inference_mode()
def encode_clip(encoder, processor, frames: np.ndarray) -> tuple[torch.Tensor, tuple[int, int, int]]:
    """Frozen V-JEPA 2 features of one clip.

    Args:
        frames: (T, H, W, 3) uint8; the processor resizes, centre-crops and normalises them.

    Returns:
        (N, D) encoder tokens on the CPU, time-major, and their grid (T', Hp, Wp), T' = T / tubelet.
    """
    pixels = processor(videos=[frames], return_tensors="pt")["pixel_values_videos"]
    weight = next(encoder.parameters())
    pixels = pixels.to(device=weight.device, dtype=weight.dtype)
    features = encoder.get_vision_features(pixels)[0]
    config = encoder.config
    num_frames, _, height, width = pixels.shape[1:]
    grid = (num_frames // config.tubelet_size, height // config.patch_size, width // config.patch_size)
    return features.cpu(), grid


def cache_features(
    examples: Sequence[dict],
    cache_dir: str | Path,
    encode: Callable[[Any], tuple[torch.Tensor, tuple[int, int, int]]],
    *,
    accelerator: Accelerator | None = None,
    log: Callable[[str], None] = print,
) -> list[dict]:
    """Encode each example's video once and keep the features on disk.

    Args:
        examples: dicts with "index" (unique, stable), "video" (what `encode` reads), "question", "answer".
        cache_dir: one `{index:08d}.pt` file per example, holding {"features": (N, D), "grid": (T', Hp, Wp)};
            an existing file is reused, so a second run encodes nothing. Keep one directory per
            (encoder, dataset, split, frame sampling): the file name does not say which.
        encode: video -> ((N, D) features, grid); see `encode_clip`.
        accelerator: with several processes, each encodes its share of the examples.

    Returns:
        Items {"features_path", "question", "answer", "index"} of every example whose features exist;
        examples whose video could not be read are reported and left out.
    """
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)

    def path_of(example: dict) -> Path:
        return cache_dir / f"{int(example['index']):08d}.pt"

    todo = [example for example in examples if not path_of(example).exists()]
    if accelerator is not None and accelerator.num_processes > 1:
        with accelerator.split_between_processes(todo) as share:
            todo = list(share)
    failed = 0
    for done, example in enumerate(todo, start=1):
        try:
            features, grid = encode(example["video"])
        except Exception as error:  # one unreadable video must not end a long run
            failed += 1
            log(f"skipping example {example['index']}: {type(error).__name__}: {error}")
            continue
        path = path_of(example)
        partial = path.with_suffix(f".tmp{os.getpid()}")
        torch.save({"features": features.detach().contiguous(), "grid": tuple(int(n) for n in grid)}, partial)
        os.replace(partial, path)  # atomic: an interrupted run never leaves half a file behind
        if done % 100 == 0:
            log(f"encoded {done}/{len(todo)} clips")
    if accelerator is not None:
        accelerator.wait_for_everyone()
    if failed:
        log(f"{failed} of {len(todo)} videos could not be read and were left out")
    return [
        {"features_path": str(path_of(example)), "question": example["question"], "answer": example["answer"],
         "index": example["index"]}
        for example in examples
        if path_of(example).exists()
    ]
