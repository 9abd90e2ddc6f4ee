"""6.5's answers, decoded: greedy, token by token with the KV cache, streamed as text, bounded in tokens and time.

`stream_answer` takes chat messages (probe-grounded mode) or `inputs_embeds` (projected mode) and yields the text
after every token. The keys and values of a prompt's fixed start are kept per model (`PREFIX_CACHE`).
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


def _prompt_state(llm, model_inputs: dict, prefix_len: int):
    """(KV cache, last position's logits) after the prompt. The first `prefix_len` input ids' keys and values come
    from `PREFIX_CACHE` (computed once per model and prefix), so only the rest runs. Not in a ZeroGPU worker,
    which may or may not outlive a call (and a GPU prefills the whole prompt in a few hundredths of a second); on
    the Space's CPU, which is this process, it does."""
    ids = model_inputs.get("input_ids")
    in_a_worker = zerogpu.ON_ZERO_GPU and zerogpu.cpu_reason() is None
    if not prefix_len or ids is None or in_a_worker or prefix_len >= ids.shape[1]:
        cache = DynamicCache(config=llm.config)
        with _llm_pass(llm):
            return cache, llm(**model_inputs, past_key_values=cache, use_cache=True, logits_to_keep=1).logits[:, -1, :]
    prefix = tuple(ids[0, :prefix_len].tolist())
    prefilled = PREFIX_CACHE.get(prefix, owner=llm)
    if prefilled is None:
        prefilled = DynamicCache(config=llm.config)
        with _llm_pass(llm):
            llm(input_ids=ids[:, :prefix_len], attention_mask=model_inputs["attention_mask"][:, :prefix_len],
                past_key_values=prefilled, use_cache=True, logits_to_keep=1)
        PREFIX_CACHE.put(prefix, prefilled, owner=llm)
    cache = copy.deepcopy(prefilled)  # the answer appends to its own copy
    with _llm_pass(llm):
        logits = llm(input_ids=ids[:, prefix_len:], attention_mask=model_inputs["attention_mask"],
                     past_key_values=cache, use_cache=True, logits_to_keep=1).logits[:, -1, :]
    return cache, logits


def _greedy_token_ids(llm, model_inputs: dict, *, eos_ids: set[int], max_new_tokens: int,
                      max_time_s: float, prefix_len: int = 0) -> Iterator[int]:
    """The answer's token ids, one forward pass each with the KV cache, in the caller's thread: greedy, with the
    repetition penalty of the model's generation config, as `llm.generate(do_sample=False)` chooses them (a test
    compares the two). It stops at an end-of-turn id, after `max_new_tokens` or after `max_time_s` seconds.
    `prefix_len`: how many of the first input ids are a fixed start whose keys and values can be reused.

    Each step enters its own context: the next step may run in another thread (gradio runs a generator's steps in its
    worker threads).
    """
    # Not `generate` with a streamer in a thread: side by side on the int8 CPU it decoded more slowly than this loop.
    penalty = llm.generation_config.repetition_penalty
    penalize = RepetitionPenaltyLogitsProcessor(penalty) if penalty not in (None, 1.0) else None
    seen = model_inputs.get("input_ids")  # as `generate`, the penalty also counts the prompt's ids when given
    seen = seen if seen is not None else torch.zeros(1, 0, dtype=torch.long, device=llm.device)
    mask = model_inputs["attention_mask"]
    started = time.perf_counter()
    cache, logits = _prompt_state(llm, model_inputs, prefix_len)
    for count in range(1, max_new_tokens + 1):
        with torch.inference_mode():
            scores = logits.float()
            next_id = (penalize(seen, scores) if penalize else scores).argmax(dim=-1, keepdim=True)
            token = int(next_id)
        if token in eos_ids:
            return
        yield token
        if count == max_new_tokens or time.perf_counter() - started >= max_time_s:
            return
        with _llm_pass(llm):
            seen = torch.cat([seen, next_id], dim=1)
            mask = torch.cat([mask, mask.new_ones(1, 1)], dim=1)
            logits = llm(input_ids=next_id, attention_mask=mask, past_key_values=cache, use_cache=True).logits[:, -1, :]


def _system_prompt_length(tokenizer, messages: list[dict[str, str]], input_ids: torch.Tensor) -> int:
    """How many of the prompt's first ids are the system message alone, as the chat template renders it; 0 when
    there is none or it does not render as a prefix of the whole prompt."""
    if not messages or messages[0]["role"] != "system":
        return 0
    alone = tokenizer.apply_chat_template(messages[:1], return_tensors="pt", return_dict=True)["input_ids"]
    length = alone.shape[1]
    return length if torch.equal(input_ids[:, :length], alone) else 0


def stream_answer(
    llm,
    tokenizer,
    *,
    messages: list[dict[str, str]] | None = None,
    inputs_embeds: torch.Tensor | None = None,
    attention_mask: torch.Tensor | None = None,
    max_new_tokens: int = MAX_NEW_TOKENS,
    max_time_s: float = MAX_GENERATION_SECONDS,
) -> Iterator[StreamedText]:
    """Generate an answer greedily and yield it after every generated token: `StreamedText(text, tokens)`.

    Give either `messages` (chat messages, e.g. `grounded_prompt(...).messages`) or `inputs_embeds`
    (+ `attention_mask`, from `build_inputs_embeds`). Decoding runs in the caller's thread (`_greedy_token_ids`)
    and stops at the end of turn, after `max_new_tokens` tokens, after `max_time_s` seconds, or when the caller
    stops iterating. Each token's text shows at once (transformers' `TextIteratorStreamer` would hold it back until a
    word ends); only an incomplete UTF-8 character (decoded as U+FFFD) waits for the token that completes it.
    Yields at least once (`StreamedText("", 0)` if no token came).
    """
    if (messages is None) == (inputs_embeds is None):
        raise ValueError("give exactly one of messages= or inputs_embeds=")
    device = llm.get_input_embeddings().weight.device
    if messages is not None:
        encoded = tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
        )
        model_inputs = {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}
        prefix_len = _system_prompt_length(tokenizer, messages, encoded["input_ids"])
    else:
        prefix_len = 0
        if attention_mask is None:
            attention_mask = torch.ones(inputs_embeds.shape[:2], dtype=torch.long)
        model_inputs = {"inputs_embeds": inputs_embeds, "attention_mask": attention_mask}
    model_inputs = {name: tensor.to(device) for name, tensor in model_inputs.items()}
    eos = llm.generation_config.eos_token_id
    eos = tokenizer.eos_token_id if eos is None else eos
    eos_ids = set(eos) if isinstance(eos, list | tuple) else {eos}

    ids: list[int] = []
    answer = StreamedText("", 0)
    for token in _greedy_token_ids(llm, model_inputs, eos_ids=eos_ids, max_new_tokens=max_new_tokens,
                                   max_time_s=max_time_s, prefix_len=prefix_len):
        ids.append(token)
        answer = StreamedText(tokenizer.decode(ids, skip_special_tokens=True).rstrip("\ufffd"), len(ids))
        yield answer
    if not answer.tokens:
        yield answer
