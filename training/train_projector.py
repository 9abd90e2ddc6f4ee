"""Train the VQA head's projector: frozen V-JEPA 2 encoder -> VideoProjector -> frozen LLM.

Only the projector learns (LLaVA-1.5's first stage). The encoder's features are computed once per
example and cached on disk (`training.clip_features`), so later epochs and later runs touch neither videos nor
the encoder; the examples come from a Hub dataset (`training.hub_examples`).
The loss is the LLM's next-token loss on the answer tokens alone; the prompt and the visual tokens
are context, never targets.

    python -m training.train_projector --dataset ORG/VIDEO_QA --answer-column answer --question-column question \\
        --output-dir out/projector --push-to-hub you/vjepa2-qwen2.5-0.5b-projector
    accelerate launch --multi_gpu -m training.train_projector ...   # the same, on every GPU of the machine

Every step is an importable function (`clip_features.cache_features`, `make_collate`, `train`, ...) so that
the tests run the very same code on tiny random-weight models and a synthetic video set. The prompt is the app's
own (`demos.compute.heads.prompt`): the projector is trained with the prompt it answers with.
"""

from __future__ import annotations

import argparse
import json
import math
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.utils import set_seed
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import DataLoader, Dataset

from demos.compute.heads.decoding import stream_answer
from demos.compute.heads.projector import VideoProjector
from demos.compute.heads.prompt import VQA_SYSTEM_PROMPT, build_inputs_embeds, vqa_token_ids
from training.clip_features import cache_features, encode_clip, frames_from_video
from training.hub_examples import DEFAULT_QUESTION, load_examples, split_off

DEFAULT_ENCODER_ID = "facebook/vjepa2-vitl-fpc64-256"
DEFAULT_LLM_ID = "Qwen/Qwen2.5-0.5B-Instruct"
IGNORE_INDEX = -100  # label of positions that are context, not targets (the prompt, the visual tokens)


# ----------------------------------------------------------------------------- batches


class CachedFeatureDataset(Dataset):
    """Items from `cache_features`; features are read from disk when an item is asked for."""

    def __init__(self, items: Sequence[dict]):
        self.items = list(items)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        item = self.items[i]
        cached = torch.load(item["features_path"], weights_only=True)
        return {"features": cached["features"], "grid": tuple(cached["grid"]),
                "question": item["question"], "answer": item["answer"]}


def make_collate(tokenizer, system_prompt: str = VQA_SYSTEM_PROMPT, max_answer_tokens: int = 64):
    """A DataLoader `collate_fn` that tokenizes each example around its visual tokens.

    The batch holds "features" (B, N, D) float32, "grid" (T', Hp, Wp), and per example
    "before_ids" (the chat prompt up to the visual tokens), "after_ids" (question, generation prompt
    and answer) and "after_labels" (IGNORE_INDEX except on the answer tokens), as lists of 1-D tensors.
    """

    def collate(examples: list[dict]) -> dict:
        grids = {example["grid"] for example in examples}
        if len(grids) != 1:
            raise ValueError(f"a batch mixes clips of different token grids {sorted(grids)}; sample a fixed frame count")
        before_ids, after_ids, after_labels = [], [], []
        for example in examples:
            ids = vqa_token_ids(tokenizer, example["question"], system_prompt, answer=example["answer"])
            answer = ids.answer[:max_answer_tokens]
            before_ids.append(torch.tensor(ids.before, dtype=torch.long))
            after_ids.append(torch.tensor(ids.after + answer, dtype=torch.long))
            after_labels.append(torch.tensor([IGNORE_INDEX] * len(ids.after) + answer, dtype=torch.long))
        return {
            "features": torch.stack([example["features"].float() for example in examples]),
            "grid": grids.pop(),
            "before_ids": before_ids,
            "after_ids": after_ids,
            "after_labels": after_labels,
        }

    return collate


def make_batches(items: Sequence[dict], tokenizer, *, batch_size: int, shuffle: bool, seed: int = 0,
                 system_prompt: str = VQA_SYSTEM_PROMPT, max_answer_tokens: int = 64, num_workers: int = 0) -> DataLoader:
    """A DataLoader over cached items; shuffling is seeded so that runs repeat exactly."""
    return DataLoader(
        CachedFeatureDataset(items),
        batch_size=batch_size,
        shuffle=shuffle,
        generator=torch.Generator().manual_seed(seed) if shuffle else None,
        collate_fn=make_collate(tokenizer, system_prompt, max_answer_tokens),
        num_workers=num_workers,
    )


# ----------------------------------------------------------------------------- loss


def assemble_inputs(llm, visual_tokens: torch.Tensor, batch: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """inputs_embeds (B, L, D), attention_mask (B, L) and labels (B, L) for a batch, right-padded.

    Each row is embed(before) + visual tokens + embed(after): the layout of `build_inputs_embeds`.
    """
    embedding = llm.get_input_embeddings()
    visual_tokens = visual_tokens.to(embedding.weight.dtype)
    num_visual = visual_tokens.shape[1]
    rows, labels = [], []
    for before, visual, after, after_labels in zip(
        batch["before_ids"], visual_tokens, batch["after_ids"], batch["after_labels"], strict=False
    ):
        rows.append(torch.cat([embedding(before), visual, embedding(after)]))
        context = torch.full((len(before) + num_visual,), IGNORE_INDEX, dtype=torch.long, device=after.device)
        labels.append(torch.cat([context, after_labels]))
    lengths = torch.tensor([len(row) for row in rows], device=visual_tokens.device)
    inputs_embeds = pad_sequence(rows, batch_first=True)
    attention_mask = (torch.arange(inputs_embeds.shape[1], device=lengths.device)[None] < lengths[:, None]).long()
    return inputs_embeds, attention_mask, pad_sequence(labels, batch_first=True, padding_value=IGNORE_INDEX)


def answer_loss(projector, llm, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed next-token cross-entropy over the answer tokens of a batch, and their count."""
    visual_tokens = projector(batch["features"], batch["grid"])
    inputs_embeds, attention_mask, labels = assemble_inputs(llm, visual_tokens, batch)
    targets = labels[:, 1:]
    # Vocabulary logits only where some row predicts an answer token: a 150k-word vocabulary times
    # every prompt position would cost more memory than everything else in the step.
    predicting = (targets != IGNORE_INDEX).any(0).nonzero().squeeze(1)
    logits = llm(inputs_embeds=inputs_embeds, attention_mask=attention_mask, logits_to_keep=predicting).logits
    targets = targets[:, predicting]
    loss_sum = F.cross_entropy(logits.float().flatten(0, 1), targets.flatten(), ignore_index=IGNORE_INDEX, reduction="sum")
    return loss_sum, (targets != IGNORE_INDEX).sum()


@torch.no_grad()
def evaluate_loss(projector, llm, loader: DataLoader, accelerator: Accelerator) -> float:
    """Mean answer-token loss over a loader, summed over every process."""
    projector.eval()
    total, count = torch.zeros((), device=accelerator.device), torch.zeros((), device=accelerator.device)
    for batch in loader:
        with accelerator.autocast():
            loss_sum, n = answer_loss(projector, llm, batch)
        total += accelerator.reduce(loss_sum.detach().float(), reduction="sum")
        count += accelerator.reduce(n.float(), reduction="sum")
    projector.train()
    return (total / count.clamp(min=1)).item()


# ----------------------------------------------------------------------------- training


def train(
    projector: VideoProjector,
    llm,
    tokenizer,
    train_items: Sequence[dict],
    eval_items: Sequence[dict],
    *,
    epochs: int = 3,
    batch_size: int = 8,
    learning_rate: float = 1e-3,
    weight_decay: float = 0.0,
    warmup_ratio: float = 0.03,
    max_grad_norm: float = 1.0,
    system_prompt: str = VQA_SYSTEM_PROMPT,
    max_answer_tokens: int = 64,
    seed: int = 0,
    accelerator: Accelerator | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, list[float]]:
    """Train the projector on cached features with the LLM frozen; return the loss history.

    Returns:
        {"train_loss": mean answer-token loss of each optimiser step,
         "eval_loss": the held-out loss before training, then after each epoch}.
    The projector passed in is trained in place (unwrapped from any DDP wrapper at the end).
    """
    accelerator = accelerator or Accelerator()
    set_seed(seed)
    llm.requires_grad_(False)
    llm.eval()
    llm.to(accelerator.device)  # frozen: not prepared, so DDP never sees parameters without gradients
    projector.train()
    optimizer = torch.optim.AdamW(projector.parameters(), lr=learning_rate, weight_decay=weight_decay)
    batches = dict(tokenizer=tokenizer, batch_size=batch_size, seed=seed, system_prompt=system_prompt,
                   max_answer_tokens=max_answer_tokens)
    train_loader = make_batches(train_items, shuffle=True, **batches)
    eval_loader = make_batches(eval_items, shuffle=False, **batches)
    total_steps = epochs * math.ceil(len(train_items) / (batch_size * accelerator.num_processes))
    warmup_steps = max(1, int(warmup_ratio * total_steps))

    def warmup_then_cosine(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        return 0.5 * (1 + math.cos(math.pi * (step - warmup_steps) / max(1, total_steps - warmup_steps)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_then_cosine)
    projector, optimizer, train_loader, eval_loader, scheduler = accelerator.prepare(
        projector, optimizer, train_loader, eval_loader, scheduler
    )
    history: dict[str, list[float]] = {"train_loss": [], "eval_loss": []}
    history["eval_loss"].append(evaluate_loss(projector, llm, eval_loader, accelerator))
    log(f"eval loss before training: {history['eval_loss'][-1]:.4f}")
    for epoch in range(1, epochs + 1):
        for batch in train_loader:
            with accelerator.autocast():
                loss_sum, n = answer_loss(projector, llm, batch)
            loss = loss_sum / n.clamp(min=1)
            accelerator.backward(loss)
            if max_grad_norm:
                accelerator.clip_grad_norm_(projector.parameters(), max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            history["train_loss"].append(loss.item())
        history["eval_loss"].append(evaluate_loss(projector, llm, eval_loader, accelerator))
        recent = history["train_loss"][-len(train_loader) :]
        log(f"epoch {epoch}/{epochs}: train loss {sum(recent) / len(recent):.4f}, eval loss {history['eval_loss'][-1]:.4f}")
    accelerator.wait_for_everyone()
    return history


def greedy_answer(projector: VideoProjector, llm, tokenizer, features: torch.Tensor, grid, question: str,
                  *, system_prompt: str = VQA_SYSTEM_PROMPT, max_new_tokens: int = 16) -> str:
    """The answer the trained projector + LLM give for one clip's cached features, decoded greedily."""
    device = next(projector.parameters()).device
    with torch.inference_mode():
        visual_tokens = projector(features.unsqueeze(0).float().to(device), grid)
    inputs_embeds, attention_mask = build_inputs_embeds(llm, tokenizer, visual_tokens, question, system_prompt)
    # stream_answer yields at least once: its last value holds the whole answer.
    *_, answer = stream_answer(llm, tokenizer, inputs_embeds=inputs_embeds, attention_mask=attention_mask,
                               max_new_tokens=max_new_tokens)
    return answer.text.strip()


def exact_match(projector, llm, tokenizer, items: Sequence[dict], *, limit: int | None = None, **kwargs) -> float:
    """Share of items whose greedy answer equals the reference answer (case and edge spaces ignored)."""
    items = list(items)[:limit]
    hits = 0
    for item in items:
        cached = torch.load(item["features_path"], weights_only=True)
        answer = greedy_answer(projector, llm, tokenizer, cached["features"], tuple(cached["grid"]), item["question"], **kwargs)
        hits += answer.lower() == item["answer"].strip().lower()
    return hits / max(1, len(items))


# ----------------------------------------------------------------------------- data from the Hub


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "--", text).strip("-")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m training.train_projector",
        description="Train the V-JEPA 2 -> LLM projector of the VQA head (encoder and LLM frozen).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    models = parser.add_argument_group("models")
    models.add_argument("--encoder-id", default=DEFAULT_ENCODER_ID, help="V-JEPA 2 checkpoint (VJEPA2Model)")
    models.add_argument("--llm-id", default=DEFAULT_LLM_ID, help="instruct LLM (AutoModelForCausalLM)")
    models.add_argument("--dtype", choices=["auto", "float32", "bfloat16", "float16"], default="auto",
                        help="dtype of the frozen models; auto: bfloat16 on a GPU, float32 on a CPU")
    data = parser.add_argument_group("data")
    data.add_argument("--dataset", required=True, help="Hub dataset id of a video-QA or video-caption set")
    data.add_argument("--dataset-config", default=None)
    data.add_argument("--split", default="train")
    data.add_argument("--eval-split", default=None, help="held-out split; without it --eval-fraction of --split")
    data.add_argument("--eval-fraction", type=float, default=0.05)
    data.add_argument("--video-column", default="video")
    data.add_argument("--question-column", default=None, help="absent: every example asks --question")
    data.add_argument("--question", default=DEFAULT_QUESTION)
    data.add_argument("--answer-column", required=True, help="answer or caption column")
    data.add_argument("--max-examples", type=int, default=None)
    data.add_argument("--num-frames", type=int, default=16)
    data.add_argument("--frame-step", type=int, default=4)
    data.add_argument("--feature-cache", default="feature_cache", help="directory of cached encoder features")
    proj = parser.add_argument_group("projector")
    proj.add_argument("--pooled-grid", type=int, nargs=3, default=[4, 4, 4], metavar=("K_T", "K_H", "K_W"),
                      help="visual tokens per clip = K_T*K_H*K_W")
    proj.add_argument("--mlp-hidden-size", type=int, default=0, help="0: the LLM's hidden size")
    opt = parser.add_argument_group("training")
    opt.add_argument("--epochs", type=int, default=3)
    opt.add_argument("--batch-size", type=int, default=8, help="per process")
    opt.add_argument("--learning-rate", type=float, default=1e-3)
    opt.add_argument("--weight-decay", type=float, default=0.0)
    opt.add_argument("--max-answer-tokens", type=int, default=64)
    opt.add_argument("--system-prompt", default=VQA_SYSTEM_PROMPT)
    opt.add_argument("--seed", type=int, default=0)
    opt.add_argument("--eval-generate", type=int, default=32,
                     help="after training, greedy answers on this many held-out examples (exact match)")
    out = parser.add_argument_group("output")
    out.add_argument("--output-dir", default="projector_out")
    out.add_argument("--push-to-hub", metavar="REPO_ID", default=None)
    out.add_argument("--private", action="store_true")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict[str, list[float]]:
    args = parse_args(argv)
    from transformers import AutoModelForCausalLM, AutoTokenizer, AutoVideoProcessor, VJEPA2Model

    accelerator = Accelerator()
    log = accelerator.print
    set_seed(args.seed)
    if args.dtype == "auto":
        dtype = torch.bfloat16 if accelerator.device.type == "cuda" else torch.float32
    else:
        dtype = getattr(torch, args.dtype)

    columns = dict(video_column=args.video_column, answer_column=args.answer_column,
                   question_column=args.question_column, question=args.question,
                   dataset_config=args.dataset_config, max_examples=args.max_examples)
    examples = load_examples(args.dataset, args.split, **columns)
    if args.eval_split:
        train_examples, eval_examples = examples, load_examples(args.dataset, args.eval_split, **columns)
    else:
        train_examples, eval_examples = split_off(examples, args.eval_fraction, args.seed)
    log(f"{len(train_examples)} training and {len(eval_examples)} held-out examples")

    encoder = VJEPA2Model.from_pretrained(args.encoder_id, dtype=dtype).to(accelerator.device).eval()
    processor = AutoVideoProcessor.from_pretrained(args.encoder_id)

    def encode(video):
        frames = frames_from_video(video, num_frames=args.num_frames, frame_step=args.frame_step, dataset_id=args.dataset)
        return encode_clip(encoder, processor, frames)

    cache_root = Path(args.feature_cache) / _slug(f"{args.encoder_id}_{args.dataset}_{args.dataset_config or ''}"
                                                  f"_f{args.num_frames}s{args.frame_step}")
    train_items = cache_features(train_examples, cache_root / _slug(args.split), encode, accelerator=accelerator, log=log)
    eval_items = cache_features(eval_examples, cache_root / _slug(args.eval_split or args.split), encode,
                                accelerator=accelerator, log=log)
    vision_hidden_size = encoder.config.hidden_size
    patches_per_side = encoder.config.crop_size // encoder.config.patch_size
    encoder = None  # frees the weights: the cache holds everything the projector needs from it
    if accelerator.device.type == "cuda":
        torch.cuda.empty_cache()

    tokenizer = AutoTokenizer.from_pretrained(args.llm_id)
    llm = AutoModelForCausalLM.from_pretrained(args.llm_id, dtype=dtype)
    projector = VideoProjector(
        vision_hidden_size=vision_hidden_size,
        llm_hidden_size=llm.get_input_embeddings().weight.shape[1],
        patches_per_side=patches_per_side,
        pooled_frames=args.pooled_grid[0],
        pooled_height=args.pooled_grid[1],
        pooled_width=args.pooled_grid[2],
        mlp_hidden_size=args.mlp_hidden_size,
        encoder_id=args.encoder_id,
        llm_id=args.llm_id,
    )
    history = train(projector, llm, tokenizer, train_items, eval_items, epochs=args.epochs,
                    batch_size=args.batch_size, learning_rate=args.learning_rate, weight_decay=args.weight_decay,
                    system_prompt=args.system_prompt, max_answer_tokens=args.max_answer_tokens, seed=args.seed,
                    accelerator=accelerator, log=log)

    if accelerator.is_main_process:
        projector = accelerator.unwrap_model(projector)
        if args.eval_generate:
            accuracy = exact_match(projector, llm, tokenizer, eval_items, limit=args.eval_generate,
                                   system_prompt=args.system_prompt)
            history["eval_exact_match"] = [accuracy]
            log(f"exact-match answers on {min(args.eval_generate, len(eval_items))} held-out examples: {accuracy:.1%}")
        output_dir = Path(args.output_dir)
        projector.save_pretrained(output_dir)
        (output_dir / "training_history.json").write_text(json.dumps({"args": vars(args), "history": history}, indent=2))
        log(f"saved the projector to {output_dir}")
        if args.push_to_hub:
            url = projector.push_to_hub(args.push_to_hub, private=args.private or None,
                                        commit_message=f"Projector {args.encoder_id} -> {args.llm_id} on {args.dataset}")
            log(f"pushed to {url}")
    accelerator.wait_for_everyone()
    return history


if __name__ == "__main__":
    main()
