"""6.5: one click of the attentive probes, planned and read in the main process around one GPU function.

Frames, preprocessing and the caches stay in the main process (`prepare`, `finish`): the encoder passes in
`features.TOKEN_CACHE`, the heads' probabilities in `HEAD_CACHE`, so that asking about a clip that was classified,
or asking again, runs no head either. One GPU function per click (`probe_work.encode_and_classify`) receives the
pixels of the passes still missing and the cached features of the others, and returns the new features and the
heads' probabilities, on the CPU. `prefetch` runs the same function with no heads to fill the cache ahead of a
click (`/prepare_clip`). No gradio here.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch

from demos import devices, videos, zerogpu
from demos.cache import LRUCache
from demos.compute.heads import features, labels, probe_results, probe_work, probes, shared_encoder


class HeadOutput(NamedTuple):
    """A head's output on one clip, as `HEAD_CACHE` keeps it (CPU)."""

    probs: torch.Tensor
    seconds: float
    pooler_tokens: int


# Each head's output per clip (the pass keys it read, view by view), on the CPU, in the main process. An entry is
# tied to the probe's model and served only while every pass it read is still in `features.TOKEN_CACHE`: the features
# it was computed from are known to be the current encoder's for these pixels.
HEAD_CACHE = LRUCache(2 * features.ENCODER_CACHE_SIZE)


@dataclass
class _PassPlan:
    """Main process: what one encoder pass is about, to read the GPU function's answer."""

    backbone: torch.nn.Module  # the `VJEPA2Model` whose encoder runs the pass
    digest: str
    clip: str
    sample: videos.FrameSample
    step: int
    heads: list[str]
    blocks: set[int]
    hit: features.EncodedClip | None = None


@dataclass
class HeadsRequest:
    """Main process: a click prepared (frames read, clips preprocessed, the cache looked up)."""

    work: probe_work.HeadsInput  # what the GPU function receives
    heads: list[shared_encoder.Head]
    passes: list[_PassPlan]
    plans: dict[str, list[list[int]]]  # every probe's plan (`work.plans` holds only those still to run)
    head_keys: dict[str, tuple]  # probe name -> its `HEAD_CACHE` key: the pass keys it reads, view by view
    cached_heads: dict[str, HeadOutput]  # the probes whose output on these features is cached
    setup: probe_results.ClickSetup


def prepare(video_path, start_s: float = 0.0, *, sampling: str = probes.SAMPLING_AUTO,
            names: list[str] | None = None) -> HeadsRequest:
    """Main process: read frames once per distinct (frames, step, start), preprocess each distinct clip once,
    and plan one encoder pass per distinct (encoder, clip) keeping every block the heads reading it need;
    a pass whose features are cached carries them instead of its pixels, and a head whose output on those cached
    features is cached does not run again."""
    sampling, reason = probes.resolve_sampling(sampling)
    heads = shared_encoder.load_heads(names)
    samples: dict[tuple, videos.FrameSample] = {}
    views_of: dict[tuple, list[np.ndarray]] = {}
    clips: dict[tuple, features.ClipToEncode] = {}
    notes: list[str] = []
    preprocess_seconds = 0.0
    plans: dict[str, list[list[tuple]]] = {}  # per head, per view, per segment: the pass key it reads
    pass_meta: dict[tuple, dict] = {}
    for head in heads:
        frames, step = probes.sampling_for(head.spec, sampling)
        views = probes.NUM_VIEWS if sampling == probes.SAMPLING_PAPER else 1
        plan = [[] for _ in range(views)]
        starts = probes.segment_starts(video_path, start_s, head.spec, sampling)
        for segment, segment_start in enumerate(starts):
            sample_key = (frames, step, round(segment_start, 6))
            if sample_key not in samples:
                samples[sample_key] = videos.sample_frames(video_path, start_s=segment_start, num_frames=frames,
                                                          frame_step=step)
                notes.extend(note for note in samples[sample_key].notes if note not in notes)
            sample = samples[sample_key]
            for view in range(views):
                processor_key = (sample_key, view, views, features.processor_key(head.processor))
                if processor_key not in clips:
                    started = time.perf_counter()
                    if sampling == probes.SAMPLING_PAPER:
                        views_key = (sample_key, head.model.config.crop_size)
                        if views_key not in views_of:  # the three views at once: one resize of the frames
                            views_of[views_key] = probes.spatial_views(sample.frames, head.model.config.crop_size)
                        clips[processor_key] = features.clip_to_encode(views_of[views_key][view], head.processor,
                                                                       cropped=True)
                    else:
                        clips[processor_key] = features.clip_to_encode(sample.frames, head.processor)
                    preprocess_seconds += time.perf_counter() - started
                clip = clips[processor_key]
                pass_key = (id(head.backbone), clip.key)
                meta = pass_meta.setdefault(pass_key, {
                    "head": head, "to_encode": clip, "sample": sample, "step": step, "blocks": set(),
                    "heads": [], "clip": _clip_text(frames, step, segment, len(starts), view, views)})
                meta["blocks"] |= set(head.blocks)
                if head.spec.title not in meta["heads"]:
                    meta["heads"].append(head.spec.title)
                plan[view].append(pass_key)
        plans[head.spec.name] = plan

    order = list(pass_meta)
    inputs, passes = [], []
    for (_, digest), meta in pass_meta.items():
        head = meta["head"]
        hit, wanted = features.lookup(head.backbone, digest, meta["blocks"])
        started = time.perf_counter()
        pixels = None if hit else meta["to_encode"].pixels()  # only a pass that runs is preprocessed
        preprocess_seconds += time.perf_counter() - started
        inputs.append(features.PassInput(head.spec.name, tuple(sorted(wanted)), len(meta["to_encode"].frames), pixels,
                                         hit.layers if hit else None))
        passes.append(_PassPlan(head.backbone, digest, meta["clip"], meta["sample"], meta["step"], meta["heads"],
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
    work = probe_work.HeadsInput(inputs, {name: plan for name, plan in indices.items() if name not in cached_heads},
                                 {name: output.probs for name, output in cached_heads.items()})
    notes.extend(_sampling_notes(sampling, heads))
    setup = probe_results.ClickSetup(sampling, reason, start_s, notes, preprocess_seconds,
                                     shared_encoder.resident_encoders(heads))
    return HeadsRequest(work, heads, passes, indices, head_keys, cached_heads, setup)


def finish(request: HeadsRequest, result: probe_work.HeadsPass) -> probe_results.Classification:
    """Main process: read the heads' results, then keep the passes and heads that ran (`features.TOKEN_CACHE`,
    `HEAD_CACHE`, each entry tied to its model)."""
    outputs = {head.spec.name: request.cached_heads.get(head.spec.name) or _output(head.spec.name, result)
               for head in request.heads}
    passes: list[probe_results.EncoderPass] = []
    for index, (plan, item) in enumerate(zip(request.passes, request.work.passes, strict=True)):
        head = next(h for h in request.heads if h.spec.name == item.encoder_of)
        layers, seconds = ((result.layers[index], result.encoder_seconds[index]) if item.runs
                           else (plan.hit.layers, plan.hit.seconds))
        passes.append(probe_results.EncoderPass(
            clip=plan.clip, num_frames=len(plan.sample.frames), frame_step=plan.step,
            timestamps_s=[float(t) for t in plan.sample.timestamps_s],
            encoder="shared V-JEPA 2 encoder" if head.shares_encoder else f"{head.hub_id}'s own encoder",
            heads=plan.heads, blocks=sorted(plan.blocks), seconds=seconds, cached=not item.runs,
            num_tokens=int(next(iter(layers.values())).shape[1])))
    results = []
    for head in request.heads:
        name, plan, output = head.spec.name, request.plans[head.spec.name], outputs[head.spec.name]
        results.append(probe_results.HeadResult(
            name, head.spec.title, head.hub_id, labels.top_labels(output.probs, head.id2label), output.seconds,
            sorted({index for view in plan for index in view}), head.shares_encoder,
            list(head.blocks), output.pooler_tokens, len(plan), output.probs,
            cached=name in request.cached_heads))
    classification = probe_results.Classification.of(request.setup, results, passes)
    for index, item in enumerate(request.work.passes):  # kept for the next click or question on these clips
        if item.runs:
            plan = request.passes[index]
            features.store(plan.backbone, plan.digest, result.layers[index], result.encoder_seconds[index])
    for head in request.heads:
        if head.spec.name not in request.cached_heads:
            HEAD_CACHE.put(request.head_keys[head.spec.name], outputs[head.spec.name], owner=head.model)
    return classification


def _output(name: str, result: probe_work.HeadsPass) -> HeadOutput:
    """A head's output as the GPU function returned it."""
    return HeadOutput(result.probs[name], result.head_seconds[name], result.pooler_tokens[name])


def classify(video_path, start_s: float = 0.0, *, sampling: str = probes.SAMPLING_AUTO,
             names: list[str] | None = None) -> probe_results.Classification:
    """Top-5 actions of every probe for the clip starting at `start_s`, with honest timings.

    Frames, preprocessing and the caches stay in the main process (`prepare`, `finish`); the model work is one
    GPU function (`probe_work.encode_and_classify`, called by `probe_work.heads_pass`), which encodes only the clips not
    cached yet and runs only the heads whose output is not cached; with nothing to run it is not called. Arguments as
    `probes.validate_request` returns them.
    """
    request = prepare(video_path, start_s, sampling=sampling, names=names)
    result = probe_work.heads_pass(request.work)
    return finish(request, result)


def prefetch(video_path, start_s: float = 0.0, *, sampling: str = probes.SAMPLING_AUTO,
             still_wanted: Callable[[], bool] = lambda: True) -> dict:
    """Fill the caches for the clips the heads will read (`/prepare_clip`), so that `classify` (and VQA's
    grounded mode, which classifies the same way) then runs only the heads, or, on a CPU, nothing at all.
    Arguments as `probes.validate_request` returns them. Nothing runs for passes and heads already cached.

    The missing passes run through `probe_work.encode_and_classify` with no heads. Off ZeroGPU one pass per call, and
    `still_wanted()` is asked before and after each: a clip that is no longer the learner's current one stops
    between passes and keeps nothing (it would only push wanted features out of the cache). On ZeroGPU every
    missing pass goes in one call (each call asks for its own GPU time). On a CPU the heads run too, one per
    call in the same way: there they take seconds (Diving48's pooler most of all; see docs/benchmarks.md),
    and a click or a question on the clip needs them whatever it asks; on a GPU they take a fraction of a second
    and the prepare's GPU time stays the passes'. On a CPU the paper protocol (minutes) is not prepared: it would
    hold the models for everyone; a click runs it.
    """
    request = prepare(video_path, start_s, sampling=sampling)
    missing = [index for index, item in enumerate(request.work.passes) if item.runs]
    numbers = {"sampling": request.setup.sampling, "sampling_reason": request.setup.sampling_reason,
               "encoder_passes": len(missing), "encoder_passes_run": 0,
               "encoder_passes_reused": len(request.work.passes) - len(missing), "heads_run": 0, "stale": False,
               "skipped": "", "seconds": 0.0}
    if missing and request.setup.sampling == probes.SAMPLING_PAPER and not devices.models_on_gpu():
        return {**numbers, "skipped": "the paper protocol takes minutes on a CPU; it runs when you click"}
    if missing and not zerogpu.worth_preparing():
        return {**numbers, "skipped": "on ZeroGPU the click encodes the clip in its own GPU call"}
    batches = [missing] if zerogpu.ON_ZERO_GPU else [[index] for index in missing]
    for batch in batches if missing else []:
        if not still_wanted():
            return {**numbers, "stale": True}
        passes = [request.work.passes[index] for index in batch]
        result = probe_work.encode_and_classify(probe_work.HeadsInput(passes, {}))
        if not still_wanted():
            return {**numbers, "stale": True}
        for position, index in enumerate(batch):
            plan = request.passes[index]
            features.store(plan.backbone, plan.digest, result.layers[position], result.encoder_seconds[position])
            numbers["seconds"] = round(numbers["seconds"] + result.encoder_seconds[position], 4)
        numbers["encoder_passes_run"] += len(batch)
    if devices.models_on_gpu() or request.setup.sampling == probes.SAMPLING_PAPER:
        return numbers
    request = prepare(video_path, start_s, sampling=sampling)  # the passes come from the cache now
    for head in request.heads:
        if head.spec.name not in request.work.plans:  # its output on these features is cached
            continue
        if not still_wanted():
            return {**numbers, "stale": True}
        plans = {head.spec.name: request.work.plans[head.spec.name]}
        result = probe_work.encode_and_classify(probe_work.HeadsInput(request.work.passes, plans))
        if not still_wanted():
            return {**numbers, "stale": True}
        HEAD_CACHE.put(request.head_keys[head.spec.name], _output(head.spec.name, result), owner=head.model)
        numbers["seconds"] = round(numbers["seconds"] + result.head_seconds[head.spec.name], 4)
        numbers["heads_run"] += 1
    return numbers


def clear_caches() -> None:
    """Forget every encoder pass and head output (benchmarks time a click on a clip never seen)."""
    features.TOKEN_CACHE.clear()
    HEAD_CACHE.clear()


def _clip_text(frames: int, step: int, segment: int, segments: int, view: int, views: int) -> str:
    text = f"{frames} frames, step {step}"
    if segments > 1:
        text += f", segment {segment + 1}/{segments}"
    if views > 1:
        text += f", view {('left', 'centre', 'right')[view] if views == 3 else view + 1}"
    return text


def _sampling_notes(sampling: str, heads: list[shared_encoder.Head]) -> list[str]:
    if sampling == probes.SAMPLING_SHARED:
        frames, step = probes.shared_clip()
        others = [f"{h.spec.title} on {h.spec.segments} segment{'s' if h.spec.segments > 1 else ''} of "
                  f"{h.spec.num_frames} frames (step {h.spec.frame_step})"
                  for h in heads if (h.spec.num_frames, h.spec.frame_step, h.spec.segments) != (frames, step, 1)]
        if others:
            return [f"Every head read one {frames}-frame clip (step {step}); the probes were trained and evaluated "
                    f"on other clips ({'; '.join(others)}), so their scores may differ from the published "
                    "accuracies."]
    if sampling == probes.SAMPLING_PER_PROBE:
        return ["Each probe read one segment of its evaluation clip (centre view); the probes were trained and "
                "evaluated on several segments (SSv2 2, Diving48 4) and 3 views: choose the paper protocol for that."]
    return []
