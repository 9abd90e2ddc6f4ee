"""Benchmark 6.5's VQA head and the Space's memory with every model resident, on full-size replicas.

    python -m bench.bench_vqa

Prints, for the app's dtype policy and fp32 (each in its own process):
- grounded mode: time to first token of `heads.stream_answer` (the probes' results already exist), and
  decode speed in tokens/s (greedy, 64 new tokens forced, so a random replica cannot stop early), plain
  `generate` and through `stream_answer` as the app streams it;
- projected mode: time to first token from cached encoder tokens (projector + inputs_embeds + prefill);
- questions asked together (`heads.stream_answers`, 1, 4 and 8 questions in one batch, 32 new tokens each):
  the prompts' prefill and the seconds per decoding step of the batch, against one question's (the app's
  `BATCH_ROW_COST` is each question's share beyond the first);
- the LLM as the app loads it on a CPU (int8 dynamic quantisation) and, for comparison, in floating point;
- memory with every model of the Space loaded (3 ViT-MAE, V-JEPA 2, both probes sharing its encoder,
  the LLM, a projector) and the LLM run: resident once loaded, the process's peak resident memory
  (which also counts pages of memory-mapped checkpoint files read while loading) and its peak
  anonymous memory (tensors and heap: what can exhaust a Space's RAM).
Targets: first token <= 3 s after the video features exist, >= 10 tokens/s, every model
resident <= 8 GB.

The LLM replica has Qwen2.5-0.5B-Instruct's architecture and vocabulary size; its tokenizer is the
locally trained stand-in (see offline/replicas.py), so prompt lengths are close to, not equal to, the real ones.
"""

from __future__ import annotations

import gc
import time

import psutil

from bench import common

LLM = "qwen2.5-0.5b-instruct"
EVERY_MODEL = ["vit-mae-base", "vit-mae-large", "vit-mae-huge", "vjepa2-vitl", "vjepa2-ssv2-probe",
               "vjepa2-diving48-probe", LLM]
NEW_TOKENS = 64
PROBE_RESULTS = {  # what the grounded prompt carries: two heads, top 5 each
    "Something-Something v2": [("Putting something on a surface", 0.41), ("Moving something away from the camera", 0.2),
                               ("Pushing something from left to right", 0.12), ("Picking something up", 0.08),
                               ("Covering something with something", 0.05)],
    "Diving48": [("Back 35som NoTwis PIKE", 0.3), ("Forward 25som 1Twis FREE", 0.2), ("Inward 25som NoTwis TUCK", 0.1),
                 ("Reverse 15som 05Twis FREE", 0.05), ("Back 2som 15Twis FREE", 0.04)],
}
QUESTION = "What changed on the table while the camera looked away?"
TOGETHER = (1, 4, 8)
TOGETHER_TOKENS = 32


def _first_token_seconds(stream) -> float:
    start = time.perf_counter()
    for streamed in stream:
        if streamed.tokens:  # the first generated token (the stand-in tokenizer decodes most of them to nothing)
            break
    seconds = time.perf_counter() - start
    for _ in stream:  # let generation finish (bounded) before the next measurement
        pass
    return seconds


def measure(repeats: int) -> dict:
    with common.AnonymousMemoryPeak() as anonymous:
        return _measure(repeats, anonymous)


def _measure(repeats: int, anonymous) -> dict:
    common.use_full_size_replicas(EVERY_MODEL)
    import torch

    import checkpoints
    from demos import devices
    from demos.compute import heads

    device, dtype = devices.device_and_dtype()
    for name in EVERY_MODEL:
        checkpoints.load(name)
    heads.load_heads()  # shares the probes' encoder with V-JEPA 2's when equal
    llm, tokenizer = checkpoints.load(LLM).model, checkpoints.load(LLM).processor
    projector = heads.VideoProjector(vision_hidden_size=1024, llm_hidden_size=llm.config.hidden_size).to(device, dtype).eval()
    gc.collect()
    loaded_rss = psutil.Process().memory_info().rss / 2**20  # resident now, loading transients gone

    prompt = heads.grounded_prompt(QUESTION, PROBE_RESULTS)
    grounded = [_first_token_seconds(heads.stream_answer(llm, tokenizer, messages=prompt.messages, max_new_tokens=8))
                for _ in range(repeats + 1)][1:]

    encoder_tokens = torch.randn(1, 8 * 256, 1024, dtype=dtype, device=device)  # 16 frames of ViT-L tokens, cached

    def projected_stream():
        with torch.inference_mode():
            visual = projector(encoder_tokens, grid=(8, 16, 16))
            embeds, mask = heads.build_inputs_embeds(llm, tokenizer, visual, QUESTION)
        return heads.stream_answer(llm, tokenizer, inputs_embeds=embeds, attention_mask=mask, max_new_tokens=8)

    projected = [_first_token_seconds(projected_stream()) for _ in range(repeats + 1)][1:]

    encoded = tokenizer.apply_chat_template(prompt.messages, add_generation_prompt=True, return_tensors="pt",
                                            return_dict=True).to(device)
    decode_rates = []
    with torch.inference_mode():
        for _ in range(repeats + 1):  # the first run warms up (a GPU's kernels)
            start = time.perf_counter()
            llm(**encoded)  # prefill alone
            devices.wait_for(llm)
            prefill = time.perf_counter() - start
            start = time.perf_counter()
            out = llm.generate(**encoded, max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS, do_sample=False)
            devices.wait_for(llm)
            generated = out.shape[1] - encoded["input_ids"].shape[1]
            decode_rates.append(generated / max(time.perf_counter() - start - prefill, 1e-6))
    # The app's path: `stream_answer`, one `StreamedText` per generated token.
    stream_rates = []
    for _ in range(repeats + 1):
        pieces, first_at, start = 0, None, time.perf_counter()
        for _answer in heads.stream_answer(llm, tokenizer, messages=prompt.messages, max_new_tokens=NEW_TOKENS):
            pieces += 1
            first_at = first_at or time.perf_counter()
        stream_rates.append((pieces - 1) / max(time.perf_counter() - first_at, 1e-6))
    together = {size: _together(llm, tokenizer, size, repeats) for size in TOGETHER}
    return {
        "dtype": str(dtype).replace("torch.", ""), "threads": torch.get_num_threads(),
        "together": together,
        "llm_weights": "int8" if any("quantized" in type(m).__module__ for m in llm.modules()) else
                       str(llm.dtype).replace("torch.", "").replace("bfloat16", "bf16").replace("float32", "fp32"),
        "prompt_tokens": int(encoded["input_ids"].shape[1]),
        "grounded_first_token_s": round(common.median_s(grounded), 3),
        "projected_first_token_s": round(common.median_s(projected), 3),
        "tokens_per_s": round(common.median_s(decode_rates[1:]), 1),
        "streamed_tokens_per_s": round(common.median_s(stream_rates[1:]), 1),
        "rss_every_model_loaded_mb": round(loaded_rss), "peak_rss_mb": round(common.peak_rss_mb()),
        "peak_anonymous_mb": round(max(anonymous.peak_mb, anonymous.current_mb())),
    }


def _together(llm, tokenizer, size: int, repeats: int) -> dict:
    """`size` questions (each a different one) decoded in one batch: the prompts' prefill to the first tokens, and
    the seconds per step after it (median of `repeats` runs, after one that warms up)."""
    from demos.compute import heads

    conversations = [heads.grounded_prompt(f"{QUESTION} ({index + 1})", PROBE_RESULTS).messages for index in range(size)]
    prefills, steps = [], []
    for _ in range(repeats + 1):
        times = [time.perf_counter()]
        for _answers in heads.stream_answers(llm, tokenizer, conversations=conversations, max_new_tokens=TOGETHER_TOKENS):
            times.append(time.perf_counter())
        prefills.append(times[1] - times[0])
        steps.append((times[-1] - times[1]) / max(len(times) - 2, 1))
    return {"prefill_s": round(common.median_s(prefills[1:]), 3), "step_s": round(common.median_s(steps[1:]), 4)}


def main() -> None:
    # The app's policy (the LLM in int8 on a CPU), fp32, and the policy with the LLM in floating point.
    rows = common.dtype_runs("bench.bench_vqa", __doc__, measure, default_repeats=3,
                             extra_envs=({"PDR_DTYPE": None, "PDR_CPU_INT8": "0"},))
    if rows is None:
        return
    print(f"{'dtype':9} {'LLM':5} {'prompt':>6} {'1st token (grounded)':>20} {'1st token (projected)':>21} "
          f"{'tokens/s':>8} {'streamed':>8} {'RSS all loaded':>14} {'peak RSS':>9} {'peak anon':>9}")
    printed = []
    for row in rows:
        printed.append(row)
        print(f"{row['dtype']:9} {row['llm_weights']:5} {row['prompt_tokens']:>6} {row['grounded_first_token_s']:>19.2f}s "
              f"{row['projected_first_token_s']:>20.2f}s {row['tokens_per_s']:>8.1f} {row['streamed_tokens_per_s']:>8.1f} "
              f"{row['rss_every_model_loaded_mb']:>12}MB {row['peak_rss_mb']:>7}MB {row['peak_anonymous_mb']:>7}MB",
              flush=True)
    print(f"\nquestions answered together, {TOGETHER_TOKENS} new tokens each: prefill, seconds per step, and each "
          "question's share of a step beyond the first")
    for row in printed:
        alone = row["together"]["1"]["step_s"]  # the keys came back through JSON
        for size, figures in row["together"].items():
            share = (figures["step_s"] / alone - 1) / (int(size) - 1) if int(size) > 1 else 0.0
            print(f"{row['dtype']:9} {row['llm_weights']:5} {size:>2} together: prefill {figures['prefill_s']:6.2f}s, "
                  f"step {figures['step_s'] * 1000:6.1f} ms, share {share:.2f}", flush=True)


if __name__ == "__main__":
    main()
