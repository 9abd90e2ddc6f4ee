"""6.5 compute: attentive probes that share one frozen V-JEPA 2 encoder.

Each probe checkpoint (`VJEPA2ForVideoClassification`) ships a whole V-JEPA 2 model (`.vjepa2`: encoder
and predictor) plus a small attentive pooler and a linear classifier. The probes were trained on a
*frozen* encoder, so their encoder weights should be exactly those of `vjepa2-vitl`. At load time each
probe's encoder is compared tensor by tensor (`torch.equal`) with the base model's:

- equal: the probe's own copy is dropped and `probe.vjepa2` becomes the base `VJEPA2Model` the other
  V-JEPA tabs use. One ViT-L in memory; a clip is encoded once and every head reads the same tokens.
- not equal: the probe keeps its own encoder (its unused predictor is dropped), the log and the page say so.

Encoder outputs are cached per encoder and per preprocessed clip (digest of the pixel tensor), so a
second head, a second question or the VQA panel never re-encode a clip that was already seen.
Frames are sampled as each probe was evaluated (SSv2: 16 frames, step 4; Diving48: 32 frames, step 2),
from a start time the learner picks. No gradio here.
"""

from __future__ import annotations

import gc
import hashlib
import logging
import re
import threading
import time
from dataclasses import dataclass, field

import torch

import checkpoints
from demos import jepa, media
from demos.cache import LRUCache
from demos.errors import UserError, number

log = logging.getLogger(__name__)

TOP_K = 5
ENCODER_CACHE_SIZE = 8  # clips kept (all encoders together); a 32-frame ViT-L clip is 16 MB of tokens in fp32
MAX_START_S = 3600.0


@dataclass(frozen=True)
class ProbeSpec:
    name: str  # checkpoint name in `checkpoints.REGISTRY`
    title: str
    task: str
    num_frames: int  # frames per clip at evaluation
    frame_step: int  # take every `frame_step`-th frame of the video


PROBES: tuple[ProbeSpec, ...] = (
    ProbeSpec("vjepa2-ssv2-probe", "Something-Something v2",
              "174 everyday hand-object actions (“pushing something from left to right”)", 16, 4),
    ProbeSpec("vjepa2-diving48-probe", "Diving48",
              "48 competition dives (take-off, somersaults, twists, body position)", 32, 2),
)
PROBE_NAMES = [spec.name for spec in PROBES]
SAMPLING_PER_PROBE = "per_probe"  # each probe sees the clip it was evaluated on
SAMPLING_SHARED = "shared"  # one 16-frame clip (step 4) for every head: a single encoder pass
SHARED_CLIP = (16, 4)
SAMPLINGS = (SAMPLING_PER_PROBE, SAMPLING_SHARED)


def spec(name: str) -> ProbeSpec:
    for probe in PROBES:
        if probe.name == name:
            return probe
    raise UserError(f"Unknown probe '{name}'. Choose one of: {', '.join(PROBE_NAMES)}.")


# ---------------------------------------------------------------------------------------------
# One encoder for every head
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EncoderComparison:
    equal: bool
    num_tensors: int
    first_difference: str | None  # the first tensor that differs, and how; None when equal
    seconds: float

    def sentence(self) -> str:
        if self.equal:
            return f"all {self.num_tensors} encoder tensors are identical"
        return f"the encoders differ ({self.first_difference})"


def compare_encoders(encoder: torch.nn.Module, reference: torch.nn.Module) -> EncoderComparison:
    """`torch.equal` on every tensor of two encoders' state dicts (names, shapes, dtypes and values)."""
    start = time.perf_counter()
    mine, theirs = encoder.state_dict(), reference.state_dict()
    difference = None
    if mine.keys() != theirs.keys():
        missing = sorted(set(theirs) ^ set(mine))
        difference = f"tensor names differ, e.g. {missing[0]}"
    else:
        for key, tensor in mine.items():
            other = theirs[key]
            if tensor.shape != other.shape:
                difference = f"{key}: shape {tuple(tensor.shape)} vs {tuple(other.shape)}"
            elif tensor.dtype != other.dtype:
                difference = f"{key}: dtype {tensor.dtype} vs {other.dtype}"
            elif not torch.equal(tensor, other.to(tensor.device)):
                delta = (tensor.float() - other.to(tensor.device).float()).abs().max().item()
                difference = f"{key}: values differ (largest difference {delta:.3g})"
            if difference:
                break
    return EncoderComparison(difference is None, len(mine), difference, time.perf_counter() - start)


@dataclass
class Head:
    spec: ProbeSpec
    model: torch.nn.Module  # VJEPA2ForVideoClassification; `.vjepa2` is the base model when shared
    processor: object  # the probe's own video processor (resize, centre crop, normalise)
    comparison: EncoderComparison

    @property
    def shares_encoder(self) -> bool:
        return self.comparison.equal

    @property
    def encoder(self) -> torch.nn.Module:
        return self.model.vjepa2.encoder

    @property
    def hub_id(self) -> str:
        return checkpoints.get(self.spec.name).hub_id

    @property
    def id2label(self) -> dict[int, str]:
        return {int(k): v for k, v in self.model.config.id2label.items()}


_setup_lock = threading.Lock()


def attach_shared_encoder(probe: torch.nn.Module, base: torch.nn.Module) -> EncoderComparison:
    """Compare the probe's encoder with the base model's; when equal, make the probe use the base model.

    After sharing, `probe(pixel_values_videos)` still works (it calls the base `VJEPA2Model` with
    `skip_predictor=True`) and the probe's duplicate encoder and predictor are freed. When the weights
    differ the probe keeps its own encoder; only its predictor, which classification never runs, is dropped.
    """
    comparison = compare_encoders(probe.vjepa2.encoder, base.encoder)
    hub_id = getattr(probe.config, "_name_or_path", "") or type(probe).__name__
    if comparison.equal:
        probe.vjepa2 = base
        log.info("Probe %s: %s with the base V-JEPA 2 encoder (checked in %.2f s); sharing one encoder",
                 hub_id, comparison.sentence(), comparison.seconds)
    else:
        probe.vjepa2.predictor = None  # VJEPA2Model.forward(skip_predictor=True) never reads it
        log.warning("Probe %s: %s; it keeps its own encoder (one more ViT in memory, one more pass per clip)",
                    hub_id, comparison.sentence())
    gc.collect()
    return comparison


def load_heads(names: list[str] | None = None) -> list[Head]:
    """The probes, each wired to the shared encoder where its weights allow (checked once per loaded model,
    kept as `Loaded.encoder_comparison`; again if the base model was reloaded)."""
    base = jepa.load().model
    heads = []
    for name in names or PROBE_NAMES:
        probe_spec = spec(name)
        loaded = checkpoints.load(name)
        with _setup_lock:
            comparison = loaded.encoder_comparison
            if comparison is None or (comparison.equal and loaded.model.vjepa2 is not base):
                loaded.encoder_comparison = attach_shared_encoder(loaded.model, base)
        heads.append(Head(probe_spec, loaded.model, loaded.processor, loaded.encoder_comparison))
    return heads


def resident_encoders(heads: list[Head]) -> int:
    """How many distinct encoders are in memory for these heads (the base model's counts once)."""
    return len({id(head.encoder) for head in heads} | {id(jepa.load().model.encoder)})


# ---------------------------------------------------------------------------------------------
# Encoder tokens, cached per encoder and per clip
# ---------------------------------------------------------------------------------------------


def clip_digest(pixel_values_videos: torch.Tensor) -> str:
    """Content hash of a preprocessed clip (shape and values): the encoder cache key."""
    array = pixel_values_videos.detach().to("cpu", torch.float32).contiguous().numpy()
    return hashlib.sha1(repr(array.shape).encode() + array.tobytes()).hexdigest()[:16]


@dataclass
class EncodedClip:
    tokens: torch.Tensor  # (1, N, D) encoder output, on the model's device and dtype
    seconds: float  # how long the encoder forward took when it ran
    cached: bool  # True: this call reused tokens computed earlier


# Encoder outputs per (encoder, clip); an entry is tied to its encoder, so a reloaded model never reuses it.
TOKEN_CACHE = LRUCache(ENCODER_CACHE_SIZE)


def encode(encoder: torch.nn.Module, pixel_values_videos: torch.Tensor, digest: str | None = None) -> EncodedClip:
    """The encoder's output for a clip, computed once per (encoder, clip) and then reused."""
    digest = digest or clip_digest(pixel_values_videos)

    def run_encoder():
        start = time.perf_counter()
        with torch.inference_mode():
            tokens = encoder(pixel_values_videos=checkpoints.on_model(encoder, pixel_values_videos)).last_hidden_state
        return tokens, time.perf_counter() - start

    (tokens, seconds), hit = TOKEN_CACHE.get_or_compute((id(encoder), digest), run_encoder, owner=encoder)
    return EncodedClip(tokens, seconds, cached=hit)


# ---------------------------------------------------------------------------------------------
# Heads, labels and the whole classification
# ---------------------------------------------------------------------------------------------

_DIVE_TAKEOFF = {"back": "back", "forward": "forward", "inward": "inward", "reverse": "reverse",
                 "armstand": "armstand"}
_DIVE_POSITION = {"free": "free position", "pike": "pike", "tuck": "tuck", "str": "straight", "none": ""}
_DIVE_TOKEN = re.compile(r"^(\d)(\d)(som|twis)$", re.IGNORECASE)


def readable_label(label: str, index: int) -> str:
    """A label a learner can read: `LABEL_7` says it has no name, Diving48 codes are spelled out.

    SSv2 names are already sentences ("Pushing something from left to right"). Diving48's vocabulary
    is codes like ["Back", "15som", "05Twis", "FREE"]; "15som" is 1.5 somersaults.
    """
    text = str(label).strip()
    if not text or re.fullmatch(r"LABEL_\d+", text):
        return f"class {index} (the checkpoint names no label)"
    parts = [p for p in re.split(r"[\s,_+\[\]'\"]+", text) if p]
    if len(parts) >= 3 and parts[0].lower() in _DIVE_TAKEOFF and any(_DIVE_TOKEN.match(p) for p in parts):
        words = [_DIVE_TAKEOFF[parts[0].lower()]]
        for part in parts[1:]:
            match = _DIVE_TOKEN.match(part)
            if match:
                count = f"{match.group(1)}.{match.group(2)}".removesuffix(".0")
                words.append(f"{count} {'somersault' if match.group(3).lower() == 'som' else 'twist'}"
                             f"{'' if count == '1' else 's'}")
            elif part.lower() in _DIVE_POSITION:
                if _DIVE_POSITION[part.lower()]:
                    words.append(_DIVE_POSITION[part.lower()])
            else:
                words.append(part)
        return f"{', '.join(words)} ({text})"
    return text


def top_labels(logits: torch.Tensor, id2label: dict[int, str], k: int = TOP_K) -> list[tuple[str, float]]:
    """The k most probable classes as (readable label, softmax probability), most probable first."""
    probs = torch.softmax(logits.detach().float().reshape(-1), dim=0)
    values, indices = probs.topk(min(k, probs.numel()))
    result, seen = [], set()
    for value, index in zip(values.tolist(), indices.tolist(), strict=False):
        name = readable_label(id2label.get(index, f"LABEL_{index}"), index)
        if name in seen:  # gr.Label keys must be unique
            name = f"{name} [class {index}]"
        seen.add(name)
        result.append((name, float(value)))
    return result


@torch.inference_mode()
def head_logits(head: Head, tokens: torch.Tensor) -> torch.Tensor:
    """The probe's attentive pooler and linear classifier on encoder tokens: what the probe adds."""
    model = head.model
    return model.classifier(model.pooler(tokens.to(next(model.pooler.parameters()).dtype)))


@dataclass
class EncoderPass:
    clip: str  # "16 frames, step 4"
    num_frames: int
    frame_step: int
    timestamps_s: list[float]
    encoder: str  # "shared V-JEPA 2 ViT encoder" or "<hub id>'s own encoder"
    heads: list[str]  # probe titles that read these tokens
    seconds: float
    cached: bool
    num_tokens: int


@dataclass
class HeadResult:
    name: str
    title: str
    hub_id: str
    top: list[tuple[str, float]]
    seconds: float  # pooler + classifier
    encoder_pass: int  # index into Classification.passes
    shares_encoder: bool
    logits: torch.Tensor = field(repr=False)  # what `top` was read from


@dataclass
class Classification:
    heads: list[HeadResult]
    passes: list[EncoderPass]
    sampling: str
    start_s: float
    notes: list[str]
    preprocess_seconds: float
    encoders_in_memory: int

    def label_dicts(self) -> dict[str, dict[str, float]]:
        return {head.name: dict(head.top) for head in self.heads}

    @property
    def encoder_runs(self) -> int:
        return sum(not p.cached for p in self.passes)

    def timings(self) -> dict:
        """Plain numbers for the API and the page."""
        return {
            "sampling": self.sampling,
            "start_s": self.start_s,
            "encoders_in_memory": self.encoders_in_memory,
            "encoder_passes_run": self.encoder_runs,
            "preprocess_s": round(self.preprocess_seconds, 4),
            "encoder_passes": [
                {"clip": p.clip, "num_frames": p.num_frames, "frame_step": p.frame_step, "encoder": p.encoder,
                 "heads": p.heads, "seconds": round(p.seconds, 4), "cached": p.cached, "tokens": p.num_tokens,
                 "timestamps_s": [round(t, 3) for t in p.timestamps_s]}
                for p in self.passes
            ],
            "heads": {h.name: {"title": h.title, "hub_id": h.hub_id, "seconds": round(h.seconds, 4),
                               "encoder_pass": h.encoder_pass, "shares_encoder": h.shares_encoder}
                      for h in self.heads},
            "notes": list(self.notes),
        }


def validate_request(video_path, start_s, sampling: str = SAMPLING_PER_PROBE) -> tuple[str, float, str]:
    """(video path, start in seconds, sampling) checked once, by the handler; `classify` trusts them."""
    if video_path is None:
        raise UserError("No video: upload a clip, record one or pick an example first.")
    start_s = number("The start time (seconds)", 0.0 if start_s is None else start_s, minimum=0, maximum=MAX_START_S)
    if sampling not in SAMPLINGS:
        raise UserError(f"Unknown sampling '{sampling}'. Choose one of: {', '.join(SAMPLINGS)}.")
    return video_path, start_s, sampling


def sampling_for(probe: ProbeSpec, sampling: str) -> tuple[int, int]:
    """(frames, step) a probe sees: its evaluation protocol, or the one shared 16-frame clip."""
    if sampling == SAMPLING_PER_PROBE:
        return probe.num_frames, probe.frame_step
    return SHARED_CLIP


@checkpoints.gpu_task
def classify(video_path, start_s: float = 0.0, *, sampling: str = SAMPLING_PER_PROBE,
             names: list[str] | None = None) -> Classification:
    """Top-5 actions of every probe for the clip starting at `start_s`, with honest timings.

    Frames are read once per distinct (frames, step) sampling; each distinct preprocessed clip is
    encoded once per distinct encoder (cached across calls); each head then runs only its pooler and
    classifier on those tokens. Arguments as `validate_request` returns them.
    """
    heads = load_heads(names)
    samples: dict[tuple[int, int], media.FrameSample] = {}
    pixels: dict[tuple, tuple[torch.Tensor, str]] = {}
    passes: dict[tuple, EncoderPass] = {}
    pass_tokens: dict[tuple, torch.Tensor] = {}
    results: list[HeadResult] = []
    notes: list[str] = []
    preprocess_seconds = 0.0
    for head in heads:
        frames_step = sampling_for(head.spec, sampling)
        if frames_step not in samples:
            sample = media.sample_frames(video_path, start_s=start_s, num_frames=frames_step[0],
                                         frame_step=frames_step[1])
            samples[frames_step] = sample
            notes.extend(note for note in sample.notes if note not in notes)
        sample = samples[frames_step]
        processor_key = (frames_step, repr(head.processor.to_dict()) if hasattr(head.processor, "to_dict") else id(head.processor))
        if processor_key not in pixels:
            started = time.perf_counter()
            pixel_values = head.processor(videos=[sample.frames], return_tensors="pt")["pixel_values_videos"]
            pixels[processor_key] = (pixel_values, clip_digest(pixel_values))
            preprocess_seconds += time.perf_counter() - started
        pixel_values, digest = pixels[processor_key]
        pass_key = (id(head.encoder), digest)
        if pass_key not in passes:
            encoded = encode(head.encoder, pixel_values, digest)
            passes[pass_key] = EncoderPass(
                clip=f"{frames_step[0]} frames, step {frames_step[1]}", num_frames=frames_step[0],
                frame_step=frames_step[1], timestamps_s=[float(t) for t in sample.timestamps_s],
                encoder="shared V-JEPA 2 encoder" if head.shares_encoder else f"{head.hub_id}'s own encoder",
                heads=[], seconds=encoded.seconds, cached=encoded.cached, num_tokens=int(encoded.tokens.shape[1]))
            pass_tokens[pass_key] = encoded.tokens
        passes[pass_key].heads.append(head.spec.title)
        started = time.perf_counter()
        logits = head_logits(head, pass_tokens[pass_key])
        seconds = time.perf_counter() - started
        results.append(HeadResult(head.spec.name, head.spec.title, head.hub_id, top_labels(logits, head.id2label),
                                  seconds, list(passes).index(pass_key), head.shares_encoder, logits.float().cpu()))
    if sampling == SAMPLING_SHARED:
        notes.append(f"Every head read one {SHARED_CLIP[0]}-frame clip (step {SHARED_CLIP[1]}); Diving48 was "
                     "evaluated on 32 frames with step 2, so its scores may differ from its published accuracy.")
    return Classification(results, list(passes.values()), sampling, start_s, notes, preprocess_seconds,
                          resident_encoders(heads))


def grounding(result: Classification) -> dict[str, list[tuple[str, float]]]:
    """Probe results as the VQA module's grounded prompt wants them: {probe title: [(label, prob), ...]}."""
    return {f"{h.title} probe": list(h.top) for h in result.heads}
