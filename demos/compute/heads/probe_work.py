"""6.5: the model work of one click, a GPU function (`encode_and_classify`), and the work it is estimated at.

It receives the pixels of the encoder passes still missing and the cached features of the others
(`features.PassInput`), runs the missing passes and the heads still to run, and returns the new features and
the heads' probabilities, on the CPU (`HeadsPass`), for the main process to keep. The estimates size its GPU
duration on ZeroGPU and decide whether it runs on the Space's CPU there (`gpu_task`, `demos.placement`): they are
of the published checkpoints' work, whatever model is loaded here.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

import checkpoints
from demos import jepa
from demos.compute.heads import features, probes, shared_encoder
from demos.gpu_functions import gpu_task


@dataclass
class HeadsInput:
    """What `encode_and_classify` receives: every encoder pass, per probe still to run its views' pass indices,
    and the probabilities of the probes whose output is cached (they do not run again)."""

    passes: list[features.PassInput]
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


# Sized from the measurements of bench_gpu on an H200 in bf16 (docs/benchmarks.md), with a margin of about 3x, as
# for 6.4. Attention grows faster than the tokens: a pass grows with the power 1.5 of its tokens.
GPU_SECONDS_PER_PASS_2048_TOKENS = 0.15
# A head per view: a fixed cost, and its pooler growing with the square of the tokens (3 self-attention blocks
# over all of them; Diving48 reads 65,536 in the paper protocol).
GPU_SECONDS_PER_HEAD_VIEW = 0.05
GPU_SECONDS_POOLER_65536_TOKENS = 0.4
# bench_heads and bench_app on the development CPU in bf16 (docs/benchmarks.md): one ViT-L pass over 1,024 tokens
# and a head's pooler over 4,096, and the powers of the tokens they grow with.
CPU_SECONDS_PER_PASS_1024_TOKENS, CPU_PASS_POWER = 2.7, 1.35
CPU_SECONDS_POOLER_4096_TOKENS, CPU_POOLER_POWER = 2.8, 1.55


def published_tokens(frames: int) -> int:
    """A clip's tokens for the published ViT-L (its registry geometry), whatever the model loaded here: the
    estimates below are of the published checkpoints' work, the work a Space does."""
    encoder = checkpoints.get(jepa.CHECKPOINT)
    return max(1, frames // encoder.tubelet_size) * encoder.patches_per_side ** 2


def pass_seconds(item: features.PassInput) -> float:
    """The estimated GPU work of one encoder pass: none when its features come from the cache."""
    return GPU_SECONDS_PER_PASS_2048_TOKENS * (published_tokens(item.num_frames) / 2048) ** 1.5 if item.runs else 0.0


def pass_cpu_seconds(item: features.PassInput) -> float:
    """The estimated CPU work of one encoder pass: none when its features come from the cache."""
    tokens = published_tokens(item.num_frames)
    return CPU_SECONDS_PER_PASS_1024_TOKENS * (tokens / 1024) ** CPU_PASS_POWER if item.runs else 0.0


def _views(work: HeadsInput):
    """The pooler input of every head view still to run, in tokens."""
    for name, plan in work.plans.items():
        blocks = len(probes.spec(name).recipe.blocks_of_24)
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


@torch.inference_mode()
def head_logits(head: shared_encoder.Head, tokens: torch.Tensor) -> torch.Tensor:
    """The probe's attentive pooler and linear classifier on its features (on the model's device): what the probe
    adds. Follows the end of `VJEPA2ForVideoClassification.forward` (transformers 5.23), `classifier(pooler(...))`,
    which there reads `last_hidden_state` only; here it reads the blocks of the probe's `probes.FeatureRecipe`."""
    model = head.model
    return model.classifier(model.pooler(tokens.to(model.device, model.dtype)))


def run_heads(work: HeadsInput) -> HeadsPass:
    """Model work: the encoder passes still missing, then each head still to run: its pooler and classifier once
    per view on its features (its segments concatenated along the tokens), the views' probabilities averaged.
    No plans (`classification.prefetch`, or every head cached): only the passes. The probabilities hold every probe,
    the cached ones included, in `probes.PROBE_NAMES` order."""
    read = {index for plan in work.plans.values() for view in plan for index in view}
    used = [index for index, item in enumerate(work.passes) if item.runs or index in read]
    # The models first, those the work names: the heads still to run and the encoders of the passes it uses (in a GPU
    # function they are resident lookups). Only those: on ZeroGPU's CPU a probe that is not needed may have no copy,
    # and with nothing to run (a question on a clip whose heads are all cached) nothing is looked up.
    wanted = set(work.plans) | {work.passes[index].encoder_of for index in used}
    probe_names = [name for name in probes.PROBE_NAMES if name in wanted]
    heads = {head.spec.name: head for head in shared_encoder.load_heads(probe_names)} if probe_names else {}
    backbones = {name: head.backbone for name, head in heads.items()}
    if jepa.CHECKPOINT in wanted:
        backbones[jepa.CHECKPOINT] = jepa.load().model
    new_layers, encoder_seconds, on_device = {}, {}, {}
    for index in used:
        item = work.passes[index]
        backbone = backbones[item.encoder_of]
        if item.runs:
            new_layers[index], encoder_seconds[index] = features.encoder_pass(backbone, item.pixels, item.blocks)
        layers = new_layers[index] if item.runs else item.layers
        if index in read:  # cached features go to the device once, whichever heads read them
            on_device[index] = {block: tensor.to(backbone.device, backbone.dtype) for block, tensor in layers.items()}
    probs, head_seconds, pooler_tokens = dict(work.cached_probs), {}, {}
    for name, plan in work.plans.items():
        blocks = heads[name].blocks
        started = time.perf_counter()
        view_probs = []
        for view in plan:
            tokens = torch.cat([on_device[index][block] for index in view for block in blocks], dim=1)
            pooler_tokens[name] = int(tokens.shape[1])
            view_probs.append(torch.softmax(head_logits(heads[name], tokens).float(), dim=-1))
        probs[name] = torch.stack(view_probs).mean(dim=0).reshape(-1).cpu()  # vjepa2 eval.py: views average probabilities
        head_seconds[name] = time.perf_counter() - started
    probs = {name: probs[name] for name in probes.PROBE_NAMES if name in probs}
    return HeadsPass(new_layers, encoder_seconds, probs, head_seconds, pooler_tokens)


def heads_pass(work: HeadsInput) -> HeadsPass:
    """A click's model work: the GPU function when there is some (a pass or a head to run); else every head's
    probabilities are cached, and no function is called."""
    if not work.runs:
        return HeadsPass({}, {}, dict(work.cached_probs), {}, {})
    return encode_and_classify(work)


@gpu_task(gpu_seconds=heads_seconds, cpu_seconds=heads_cpu_seconds)
def encode_and_classify(work: HeadsInput) -> HeadsPass:
    """The model work of one click (see `run_heads`)."""
    return run_heads(work)
