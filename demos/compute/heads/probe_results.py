"""6.5: what a click returns: each encoder pass and head, their top labels (`labels.top_labels`), and the numbers
for the API and the page. No gradio here.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import torch

from demos.compute.heads import shared_encoder
from demos.compute.heads.labels import TopLabel, top_labels


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
class ClickSetup:
    """How a click's clips were sampled and prepared, in the main process (`classification.prepare`)."""

    sampling: str
    sampling_reason: str
    start_s: float
    notes: list[str]
    preprocess_seconds: float
    encoders_in_memory: int


@dataclass
class Classification(ClickSetup):
    heads: list[HeadResult]
    passes: list[EncoderPass]

    @classmethod
    def of(cls, setup: ClickSetup, heads: list[HeadResult], passes: list[EncoderPass]) -> Classification:
        return cls(**{item.name: getattr(setup, item.name) for item in fields(ClickSetup)}, heads=heads, passes=passes)

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


def grounding(probs: dict[str, torch.Tensor]) -> dict[str, list[tuple[str, float]]]:
    """Probe results as the VQA module's grounded prompt wants them: {probe title: [(label, prob), ...]}, from
    {probe name: class probabilities} (`probe_work.HeadsPass.probs`, `HeadResult.probs`)."""
    heads = {head.spec.name: head for head in shared_encoder.load_heads(list(probs))}
    return {f"{heads[name].spec.title} probe": [(t.label, t.probability) for t in top_labels(p, heads[name].id2label)]
            for name, p in probs.items()}
