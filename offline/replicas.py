"""Random-weight replicas of the Space's checkpoints, written under their real hub ids.

The Hugging Face Hub cannot be reached where this project is built and tested, so:
- tests and the offline demo mode use `size="tiny"` replicas (same classes, processors and layout);
- benchmarks use `size="full"` replicas built from the published configs (speed and memory do not
  depend on weight values; what a prediction looks like does, and cannot be checked with these).

Each replica is written as a Hugging Face cache entry (`models--org--name/refs/main` and
`snapshots/<commit>/`), so `from_pretrained("facebook/...")` runs exactly as in production.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]

# Published architecture of each checkpoint (transformers config fields that differ from defaults).
# ViTMAEConfig() and VJEPA2Config() defaults are vit-mae-base and vjepa2-vitl-fpc64-256.
FULL_CONFIGS = {
    "vit-mae-base": {},
    "vit-mae-large": dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096),
    "vit-mae-huge": dict(hidden_size=1280, num_hidden_layers=32, num_attention_heads=16, intermediate_size=5120,
                         patch_size=14),
    "vjepa2-vitl": {},
    "vjepa2-ssv2-probe": dict(frames_per_clip=16, num_labels=174),
    "vjepa2-diving48-probe": dict(frames_per_clip=32, num_labels=48),
    "qwen2.5-0.5b-instruct": dict(
        hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
        num_key_value_heads=2, vocab_size=151936, max_position_embeddings=32768, rope_theta=1e6,
        tie_word_embeddings=True,
    ),
}

_TINY_MAE = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                 decoder_hidden_size=32, decoder_num_hidden_layers=1, decoder_num_attention_heads=2,
                 decoder_intermediate_size=64)
# crop 128 with 16-pixel patches: an 8x8 grid, enough for block and tube geometry to mean something.
# 8 blocks: the Diving48 probe reads blocks 17, 19, 21, 23 of 24, counted from the last (1, 3, 5, 7 here).
_TINY_VJEPA = dict(crop_size=128, frames_per_clip=16, hidden_size=64, num_hidden_layers=8, num_attention_heads=4,
                   pred_hidden_size=32, pred_num_hidden_layers=2, pred_num_attention_heads=2, num_pooler_layers=1)
TINY_CONFIGS = {
    "vit-mae-base": _TINY_MAE,
    "vit-mae-large": dict(_TINY_MAE, num_hidden_layers=3),
    "vit-mae-huge": dict(_TINY_MAE, patch_size=14),
    "vjepa2-vitl": _TINY_VJEPA,
    "vjepa2-ssv2-probe": dict(_TINY_VJEPA, frames_per_clip=16, num_labels=174),
    "vjepa2-diving48-probe": dict(_TINY_VJEPA, frames_per_clip=32, num_labels=48),
}


# Bumped when a replica's recipe changes, so a cache written by the old one (bench/common.py keeps them) is
# written again: the new snapshot gets another commit, and refs/main then names it.
RECIPE_VERSIONS = {"qwen2.5-0.5b-instruct": 3, "vit-mae-base": 2, "vit-mae-large": 2, "vit-mae-huge": 2}


def _is_commit(revision: str) -> bool:
    return len(revision) == 40 and all(c in "0123456789abcdef" for c in revision)


def replica_commit(ckpt) -> str:
    """The snapshot commit a replica of `ckpt` is written under: its pinned revision, else a name of the recipe."""
    if _is_commit(ckpt.revision):
        return ckpt.revision
    version = RECIPE_VERSIONS.get(ckpt.name, 1)
    return hashlib.sha1(f"replica:{ckpt.hub_id}{f':v{version}' if version > 1 else ''}".encode()).hexdigest()


def cache_entry(cache_dir: Path, ckpt) -> Path:
    """Create `models--org--name` for `ckpt` with `refs/<revision>` pointing at its snapshot folder (none for a
    pinned commit); return the folder."""
    repo = Path(cache_dir) / f"models--{ckpt.hub_id.replace('/', '--')}"
    commit = replica_commit(ckpt)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True, exist_ok=True)
    if not _is_commit(ckpt.revision):
        (repo / "refs").mkdir(parents=True, exist_ok=True)
        (repo / "refs" / ckpt.revision).write_text(commit)
    return snapshot


def _label_names(name: str, count: int) -> dict[int, str]:
    """Class names in each probe's real id2label format, so tests exercise `demos.compute.heads.labels`.

    Diving48: the full vocabulary as Python-list strings. SSv2: the 20 real names at their ids, the other
    ids filled with those names in the same bracketed format, numbered ("Closing [something] (replica 7)").
    """
    from demos.compute.heads import labels

    if name == "vjepa2-diving48-probe" and count == len(labels.DIVING48_LABELS):
        return dict(enumerate(labels.DIVING48_LABELS))
    if name == "vjepa2-ssv2-probe":
        sample = list(labels.SSV2_LABEL_SAMPLE.values())
        return {i: labels.SSV2_LABEL_SAMPLE.get(i, f"{sample[i % len(sample)]} (replica {i})") for i in range(count)}
    return {i: f"replica class {i}" for i in range(count)}


def build_model(ckpt, size: str = "tiny"):
    """A random-weight model of `ckpt`'s class and architecture (a `checkpoints.Checkpoint`), and its processor."""
    import torch
    import transformers

    name = ckpt.name
    overrides = dict((TINY_CONFIGS if size == "tiny" else FULL_CONFIGS).get(name, {}))
    torch.manual_seed(0)
    if ckpt.model_class == "ViTMAEForPreTraining":
        config = transformers.ViTMAEConfig(**overrides)
        model = transformers.ViTMAEForPreTraining(config)
        # The published tables are MAE's fixed 2-D sin-cos (get_2d_sincos_pos_embed, column first); transformers
        # 5.23 leaves them zero when it builds a model, which would hide every position question from the tests.
        from demos import mae_positions

        with torch.no_grad():
            for table in (model.vit.embeddings.position_embeddings, model.decoder.decoder_pos_embed):
                side = math.isqrt(table.shape[1] - 1)
                table[0, 1:] = mae_positions.sincos_table(side, side, table.shape[-1], mae_positions.COLUMN_FIRST)
        size_px = config.image_size
        processor = transformers.ViTImageProcessor(
            size={"height": size_px, "width": size_px}, image_mean=IMAGENET_MEAN, image_std=IMAGENET_STD,
            resample=3,  # bicubic, as the hub preprocessor config says
        )
        return model, processor
    if ckpt.model_class.startswith("VJEPA2"):
        num_labels = overrides.pop("num_labels", None)
        if num_labels:
            names = _label_names(name, num_labels)
            overrides.update(id2label=names, label2id={v: k for k, v in names.items()})
        config = transformers.VJEPA2Config(**overrides)
        model = getattr(transformers, ckpt.model_class)(config)
        # The published mask tokens: V-JEPA 2 training uses one clip-length group, so only token 0 gets a
        # gradient; the others keep their zero initialisation. transformers' predictor reads token 1, so
        # the app's `jepa.use_trained_mask_token` must copy 0 into 1, and the tests see it happen.
        vjepa = model if ckpt.model_class == "VJEPA2Model" else model.vjepa2
        with torch.no_grad():
            vjepa.predictor.embeddings.mask_tokens.zero_()
            vjepa.predictor.embeddings.mask_tokens[0].normal_(std=0.02)
        processor = transformers.VJEPA2VideoProcessor(crop_size=config.crop_size)
        return model, processor
    if name == "qwen2.5-0.5b-instruct":
        from offline import tiny_llm

        # Qwen's own tokenizer cannot be downloaded here: a byte-level BPE trained locally stands in.
        # For the full-size replica only speed matters, which the vocabulary size (kept at Qwen's) decides.
        tokenizer = tiny_llm.build_tiny_tokenizer()
        if size == "tiny":
            return tiny_llm.build_tiny_llm(tokenizer), tokenizer
        config = transformers.Qwen2Config(**FULL_CONFIGS[name], eos_token_id=tokenizer.convert_tokens_to_ids(
            tiny_llm.IM_END), pad_token_id=tokenizer.pad_token_id)
        llm = transformers.Qwen2ForCausalLM(config).eval()
        # The stand-in tokenizer knows 600 of the 151,936 ids, and the others decode to nothing; the streamer
        # shows text a word at a time. So a random answer would stay invisible until it ended, and "first
        # token" would time the whole answer. Only words that start with a space keep their rows: the others
        # get a logit of 0 (the output layer is tied to these rows), under the best word's, so greedy decoding
        # says one word per token, as a real answer shows one word after another. Every matmul keeps Qwen's
        # vocabulary size, so speed is unchanged.
        words = [i for token, i in tokenizer.get_vocab().items() if token.startswith("\u0120") and len(token) > 1]
        keep = torch.zeros(config.vocab_size, dtype=torch.bool)
        keep[words] = True
        with torch.no_grad():
            llm.get_input_embeddings().weight[~keep] = 0
        return llm, tokenizer
    if name == "vqa-projector":
        return None, None
    raise ValueError(f"No replica recipe for {name}")


def write_checkpoint(ckpt, cache_dir: Path, size: str = "tiny") -> Path | None:
    """Save a random-weight replica of `ckpt` into `cache_dir` under its hub id; return the snapshot folder."""
    if not ckpt.hub_id:
        return None
    model, processor = build_model(ckpt, size)
    if model is None:
        return None
    snapshot = cache_entry(cache_dir, ckpt)
    model.save_pretrained(snapshot)
    if processor is not None:
        processor.save_pretrained(snapshot)
    return snapshot
