"""6.5's answers, decoded: greedy, token by token with the KV cache, streamed as text, bounded in tokens and time.

`stream_answers` takes chat messages per question (probe-grounded mode: several questions decode in one batch, each
answered as it would be alone) or `inputs_embeds` (projected mode), and yields the texts after every token;
`stream_answer` is one question's. The keys and values of a prompt's fixed start are kept per model (`PREFIX_CACHE`).
"""

from __future__ import annotations

import contextlib
import copy
import time
from collections.abc import Iterator
from typing import NamedTuple

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from transformers import DynamicCache, RepetitionPenaltyLogitsProcessor

from demos import zerogpu
from demos.cache import LRUCache

# What the model may spend answering.
MAX_NEW_TOKENS = 128
MAX_GENERATION_SECONDS = 30.0


class StreamedText(NamedTuple):
    """One step of a streamed answer: the text so far and how many tokens it came from."""

    text: str
    tokens: int


# The keys and values of a prompt's fixed start (the system prompt, near half the grounded prompt) per model, so an
# answer prefills only the rest (`_prompt_state`).
PREFIX_CACHE = LRUCache(2)


# Every fused attention kernel but cuDNN's. cuDNN's builds an execution plan for every new shape, cached per
# thread, and decoding meets a new key length at every token: on an H200 an answer in a thread that had not decoded
# before (every ZeroGPU call runs in a new one) ran several times slower than without it (docs/benchmarks.md).
_ATTENTION_WITHOUT_CUDNN = [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]


def _llm_pass(llm) -> contextlib.ExitStack:
    """The context of one LLM forward pass: inference mode and, on CUDA, attention without cuDNN's kernel.
    Entered per pass, not per answer, so the encoders keep the kernels PyTorch picks for them; the switch is
    process-wide while it lasts, which can change only a concurrent pass's kernel, never a result."""
    context = contextlib.ExitStack()
    context.enter_context(torch.inference_mode())
    if llm.device.type == "cuda":
        context.enter_context(sdpa_kernel(_ATTENTION_WITHOUT_CUDNN))
    return context


def _positions(mask: torch.Tensor) -> torch.Tensor:
    """Each id's position in its own row, padding skipped: a padded row reads as it would alone."""
    return (mask.cumsum(-1) - 1).clamp(min=0)


def _prompt_state(llm, model_inputs: dict, prefix_len: int):
    """(KV cache, last position's logits) after the prompts, a row each. The first `prefix_len` input ids, the same in
    every row, have their keys and values from `PREFIX_CACHE` (computed once per model and prefix), so only the rest
    runs. Not in a ZeroGPU worker, which may or may not outlive a call (and a GPU prefills the whole prompt in a few
    hundredths of a second); on the Space's CPU, which is this process, it does."""
    ids, mask = model_inputs.get("input_ids"), model_inputs["attention_mask"]
    positions = _positions(mask)
    in_a_worker = zerogpu.ON_ZERO_GPU and zerogpu.cpu_reason() is None
    if not prefix_len or ids is None or in_a_worker or prefix_len >= ids.shape[1]:
        cache = DynamicCache(config=llm.config)
        with _llm_pass(llm):
            return cache, llm(**model_inputs, position_ids=positions, past_key_values=cache, use_cache=True,
                              logits_to_keep=1).logits[:, -1, :]
    prefix = tuple(ids[0, :prefix_len].tolist())
    prefilled = PREFIX_CACHE.get(prefix, owner=llm)
    if prefilled is None:
        prefilled = DynamicCache(config=llm.config)
        with _llm_pass(llm):
            llm(input_ids=ids[:1, :prefix_len], attention_mask=mask[:1, :prefix_len], past_key_values=prefilled,
                use_cache=True, logits_to_keep=1)
        PREFIX_CACHE.put(prefix, prefilled, owner=llm)
    cache = copy.deepcopy(prefilled)  # the answers append to their own copy
    if ids.shape[0] > 1:
        cache.batch_repeat_interleave(ids.shape[0])
    with _llm_pass(llm):
        logits = llm(input_ids=ids[:, prefix_len:], attention_mask=mask, position_ids=positions[:, prefix_len:],
                     past_key_values=cache, use_cache=True, logits_to_keep=1).logits[:, -1, :]
    return cache, logits


def _penalized(scores: torch.Tensor, seen: torch.Tensor, penalty: float) -> torch.Tensor:
    """transformers' repetition penalty (`RepetitionPenaltyLogitsProcessor`), row by row: each row's `seen` ids are
    its own (a padded row repeats one of its ids, which penalizes nothing twice)."""
    return RepetitionPenaltyLogitsProcessor(penalty)(seen, scores) if seen.shape[1] else scores


def _greedy_rows(llm, model_inputs: dict, *, eos_ids: set[int], max_new_tokens: int, max_time_s: float,
                 prefix_len: int = 0, seen: torch.Tensor | None = None) -> Iterator[list[int | None]]:
    """Every row's next token id, one forward pass of all the rows still answering per step, with the KV cache, in
    the caller's thread: greedy, with the repetition penalty of the model's generation config, as
    `llm.generate(do_sample=False)` chooses them for each prompt alone (tests compare the two). A row ends at an
    end-of-turn id (None from then on); all end after `max_new_tokens` or after `max_time_s` seconds.
    `prefix_len`: how many of the first input ids are a fixed start whose keys and values can be reused. `seen`: the
    ids the penalty counts per row (as `generate`, the prompt's), padded with a repeat of one of the row's own.

    Each step enters its own context: the next step may run in another thread (gradio runs a generator's steps in its
    worker threads).
    """
    # Not `generate` with a streamer in a thread: side by side on the int8 CPU it decoded more slowly than this loop.
    penalty = llm.generation_config.repetition_penalty
    penalty = None if penalty in (None, 1.0) else penalty
    mask = model_inputs["attention_mask"]
    rows = mask.shape[0]
    seen = seen if seen is not None else torch.zeros(rows, 0, dtype=torch.long, device=llm.device)
    answering = list(range(rows))  # the rows still answering: the rows of the cache, the mask and the logits
    started = time.perf_counter()
    cache, logits = _prompt_state(llm, model_inputs, prefix_len)
    for count in range(1, max_new_tokens + 1):
        with torch.inference_mode():
            scores = logits.float()
            next_ids = (_penalized(scores, seen, penalty) if penalty else scores).argmax(dim=-1, keepdim=True)
        tokens: list[int | None] = [None] * rows
        going = []
        for index, (row, token) in enumerate(zip(answering, next_ids[:, 0].tolist(), strict=True)):
            if token not in eos_ids:
                tokens[row] = token
                going.append(index)
        if not going:
            return
        yield tokens
        if count == max_new_tokens or time.perf_counter() - started >= max_time_s:
            return
        with _llm_pass(llm):
            if len(going) < len(answering):  # rows that ended leave the batch
                keep = torch.tensor(going, device=mask.device)
                cache.batch_select_indices(keep)
                mask, seen, next_ids = mask[keep], seen[keep], next_ids[keep]
                answering = [answering[index] for index in going]
            seen = torch.cat([seen, next_ids], dim=1)
            mask = torch.cat([mask, mask.new_ones(len(answering), 1)], dim=1)
            logits = llm(input_ids=next_ids, attention_mask=mask, position_ids=_positions(mask)[:, -1:],
                         past_key_values=cache, use_cache=True).logits[:, -1, :]


def _system_prompt_length(tokenizer, messages: list[dict[str, str]], input_ids: torch.Tensor) -> int:
    """How many of the prompt's first ids are the system message alone, as the chat template renders it; 0 when
    there is none or it does not render as a prefix of the whole prompt."""
    if not messages or messages[0]["role"] != "system":
        return 0
    alone = tokenizer.apply_chat_template(messages[:1], return_tensors="pt", return_dict=True)["input_ids"]
    length = alone.shape[1]
    return length if torch.equal(input_ids[:, :length], alone) else 0


def _common_prefix_length(prompts: list[torch.Tensor]) -> int:
    """How many first ids all the prompts share, leaving each at least one of its own (its last position's logits)."""
    shortest = min(len(ids) for ids in prompts)
    same = torch.stack([ids[:shortest] for ids in prompts]).eq(prompts[0][:shortest]).all(dim=0)
    differs = (~same).nonzero()
    return min(int(differs[0]) if len(differs) else shortest, shortest - 1)


def _conversations_as_rows(tokenizer, conversations: list[list[dict[str, str]]]) -> tuple[dict, int, torch.Tensor]:
    """The chat prompts as one batch: (model inputs, the length of the start they all share, the ids the repetition
    penalty counts per row). The shared start (one prompt's system prompt; several prompts' common start, up to their
    questions when they are about one clip) comes first in every row, then each row's rest, padded on its left (masked,
    and skipped by the positions)."""
    prompts = [tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                             return_dict=True)["input_ids"][0] for messages in conversations]
    prefix_len = min(_system_prompt_length(tokenizer, messages, ids[None]) for messages, ids in
                     zip(conversations, prompts, strict=True))
    if any(not torch.equal(ids[:prefix_len], prompts[0][:prefix_len]) for ids in prompts):
        prefix_len = 0
    if len(prompts) > 1:  # questions about one clip share everything before the question: prefilled once
        prefix_len = max(prefix_len, _common_prefix_length(prompts))
    width = max(len(ids) for ids in prompts) - prefix_len
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    ids = torch.full((len(prompts), prefix_len + width), pad, dtype=torch.long)
    mask = torch.zeros_like(ids)
    seen = torch.empty_like(ids)
    for row, prompt in enumerate(prompts):
        rest = len(prompt) - prefix_len
        placed = torch.cat([torch.arange(prefix_len), torch.arange(ids.shape[1] - rest, ids.shape[1])])
        ids[row, placed], mask[row, placed] = prompt, 1
        seen[row] = prompt[0]
        seen[row, placed] = prompt
    return {"input_ids": ids, "attention_mask": mask}, prefix_len, seen


def stream_answers(
    llm,
    tokenizer,
    *,
    conversations: list[list[dict[str, str]]] | None = None,
    inputs_embeds: torch.Tensor | None = None,
    attention_mask: torch.Tensor | None = None,
    max_new_tokens: int = MAX_NEW_TOKENS,
    max_time_s: float = MAX_GENERATION_SECONDS,
) -> Iterator[tuple[StreamedText, ...]]:
    """Generate one answer per prompt greedily, in one batch, and yield them all after every step: a
    `StreamedText(text, tokens)` per prompt, each the answer it would get alone.

    Give either `conversations` (chat messages per prompt, e.g. `grounded_prompt(...).messages`) or `inputs_embeds`
    (+ `attention_mask`, from `build_inputs_embeds`; one prompt per row, unpadded). Decoding runs in the caller's
    thread (`_greedy_rows`); an answer stops at its end of turn, and all stop after `max_new_tokens` tokens, after
    `max_time_s` seconds, or when the caller stops iterating. Each token's text shows at once (transformers'
    `TextIteratorStreamer` would hold it back until a word ends); only an incomplete UTF-8 character (decoded as
    U+FFFD) waits for the token that completes it. Yields at least once (empty answers if no token came).
    """
    if (conversations is None) == (inputs_embeds is None):
        raise ValueError("give exactly one of conversations= or inputs_embeds=")
    device = llm.get_input_embeddings().weight.device
    if conversations is not None:
        model_inputs, prefix_len, seen = _conversations_as_rows(tokenizer, conversations)
    else:
        prefix_len, seen = 0, None
        if attention_mask is None:
            attention_mask = torch.ones(inputs_embeds.shape[:2], dtype=torch.long)
        model_inputs = {"inputs_embeds": inputs_embeds, "attention_mask": attention_mask}
    model_inputs = {name: tensor.to(device) for name, tensor in model_inputs.items()}
    eos = llm.generation_config.eos_token_id
    eos = tokenizer.eos_token_id if eos is None else eos
    eos_ids = set(eos) if isinstance(eos, list | tuple) else {eos}

    ids: list[list[int]] = [[] for _ in range(model_inputs["attention_mask"].shape[0])]
    answers = tuple(StreamedText("", 0) for _ in ids)
    stepped = False
    for tokens in _greedy_rows(llm, model_inputs, eos_ids=eos_ids, max_new_tokens=max_new_tokens,
                               max_time_s=max_time_s, prefix_len=prefix_len,
                               seen=None if seen is None else seen.to(device)):
        for row, token in enumerate(tokens):
            if token is not None:
                ids[row].append(token)
        answers = tuple(StreamedText(tokenizer.decode(row, skip_special_tokens=True).rstrip("\ufffd"), len(row))
                        if token is not None else answer for row, token, answer in zip(ids, tokens, answers,
                                                                                        strict=True))
        stepped = True
        yield answers
    if not stepped:
        yield answers


def stream_answer(llm, tokenizer, *, messages: list[dict[str, str]] | None = None,
                  inputs_embeds: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
                  max_new_tokens: int = MAX_NEW_TOKENS,
                  max_time_s: float = MAX_GENERATION_SECONDS) -> Iterator[StreamedText]:
    """One prompt's answer (`stream_answers` of one), after every generated token."""
    if (messages is None) == (inputs_embeds is None):
        raise ValueError("give exactly one of messages= or inputs_embeds=")
    answers = stream_answers(llm, tokenizer, conversations=None if messages is None else [messages],
                             inputs_embeds=inputs_embeds, attention_mask=attention_mask,
                             max_new_tokens=max_new_tokens, max_time_s=max_time_s)
    try:
        for (answer,) in answers:
            yield answer
    finally:
        answers.close()
