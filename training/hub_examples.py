"""The projector's training examples from a Hub video-QA or video-caption dataset, and a held-out split."""

from __future__ import annotations

import numpy as np

DEFAULT_QUESTION = "Describe what happens in the video."  # asked of every example of a caption set


def load_examples(dataset_id: str, split: str, *, video_column: str, answer_column: str,
                  question_column: str | None = None, question: str = DEFAULT_QUESTION,
                  dataset_config: str | None = None, max_examples: int | None = None) -> list[dict]:
    """Examples {"index", "video", "question", "answer"} of a Hub video-QA or video-caption split.

    Videos are kept undecoded (paths or bytes); a missing question column means every example
    asks `question` (a caption set then becomes "describe the video" QA).
    """
    import datasets

    dataset = datasets.load_dataset(dataset_id, dataset_config, split=split)
    if isinstance(dataset.features.get(video_column), datasets.Video):
        dataset = dataset.cast_column(video_column, datasets.Video(decode=False))
    if max_examples is not None:
        dataset = dataset.select(range(min(max_examples, len(dataset))))
    examples = []
    for index, row in enumerate(dataset):
        answer = row[answer_column]
        if isinstance(answer, (list, tuple)):  # several reference captions: train on the first
            answer = answer[0] if answer else ""
        if not str(answer).strip():
            continue
        examples.append({
            "index": index,
            "video": row[video_column],
            "question": str(row[question_column]) if question_column else question,
            "answer": str(answer).strip(),
        })
    return examples


def split_off(examples: list[dict], fraction: float, seed: int) -> tuple[list[dict], list[dict]]:
    """(train, held-out) with `fraction` of the examples held out, chosen with a fixed seed."""
    order = np.random.default_rng(seed).permutation(len(examples))
    held = max(1, int(round(fraction * len(examples))))
    return [examples[i] for i in order[held:]], [examples[i] for i in order[:held]]
