"""A tiny random-weight instruct LLM of the Qwen2 family, with a tokenizer trained here (used by offline/replicas.py).

The Hub cannot be reached from our machines, so tests build the same classes that production
loads (`Qwen2ForCausalLM` + a fast tokenizer with a Qwen-style chat template) at toy size:
`apply_chat_template`, `generate` and `inputs_embeds` then run exactly as with
`Qwen/Qwen2.5-0.5B-Instruct`, only the numbers are meaningless.
"""

from __future__ import annotations

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import GenerationConfig, PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

# The special tokens of Qwen2.5-Instruct that its chat template uses.
END_OF_TEXT = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
SPECIAL_TOKENS = [END_OF_TEXT, IM_START, IM_END]

# Qwen2.5's template, shortened: a default system turn when none is given, then
# `<|im_start|>role\ncontent<|im_end|>\n` per message, and the assistant header on request.
QWEN_STYLE_CHAT_TEMPLATE = (
    "{%- if messages[0]['role'] != 'system' %}"
    "{{- '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)

# Enough English for byte-level BPE to learn whole-word tokens for the words the tests use.
_CORPUS_WORDS = (
    "system user assistant you are a helpful assistant answer questions about the video clip what colour is the square "
    "which way does it move left right up down red green blue yellow white black a an of in on to "
    "it is was the person hand table cup pushing pulling something from video probe labels "
    "question answer only know these results "
    "diving throwing catching opening closing camera looked away changed"
)


def synthetic_corpus(repeats: int = 50) -> list[str]:
    """Sentences built from `_CORPUS_WORDS`; repeated so that BPE merges them into whole words."""
    words = _CORPUS_WORDS.split()
    lines = []
    for r in range(repeats):
        rotated = words[r % len(words) :] + words[: r % len(words)]
        lines.append(" ".join(rotated))
        lines.append(" ".join(w.capitalize() for w in rotated[:12]) + "?")
        lines.append("\n".join(rotated[:8]) + ".")
    return lines


def build_tiny_tokenizer(vocab_size: int = 600) -> PreTrainedTokenizerFast:
    """Byte-level BPE trained on `synthetic_corpus()`, wrapped with Qwen's specials and template.

    Like Qwen2.5-Instruct: eos is `<|im_end|>` (the end of an assistant turn) and pad is
    `<|endoftext|>`; no BOS is added.
    """
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(synthetic_corpus(), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token=IM_END,
        pad_token=END_OF_TEXT,
        additional_special_tokens=[IM_START],
        chat_template=QWEN_STYLE_CHAT_TEMPLATE,
        model_max_length=4096,
    )


def build_tiny_llm(
    tokenizer: PreTrainedTokenizerFast,
    *,
    hidden_size: int = 64,
    num_layers: int = 2,
    initializer_range: float = 0.02,
    seed: int = 0,
) -> Qwen2ForCausalLM:
    """A random-weight `Qwen2ForCausalLM` whose vocabulary matches `tokenizer`.

    Its generation config mirrors Qwen2.5-Instruct's (sampling switched on, stop on `<|im_end|>`),
    so that code which means to decode greedily has to say so.
    """
    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=num_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        initializer_range=initializer_range,
        bos_token_id=None,
        eos_token_id=tokenizer.convert_tokens_to_ids(IM_END),
        pad_token_id=tokenizer.pad_token_id,
    )
    model = Qwen2ForCausalLM(config).eval()
    model.generation_config = GenerationConfig(
        do_sample=True,
        temperature=0.7,
        top_p=0.8,
        top_k=20,
        repetition_penalty=1.05,
        eos_token_id=[tokenizer.convert_tokens_to_ids(IM_END), tokenizer.convert_tokens_to_ids(END_OF_TEXT)],
        pad_token_id=tokenizer.pad_token_id,
    )
    return model
