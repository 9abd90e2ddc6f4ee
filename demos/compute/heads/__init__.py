"""6.5 "One frozen encoder, many tasks": attentive probes call the action on one frozen V-JEPA 2 encoder, and a small
language model answers questions about the clip. The tab, the benchmarks and the checks use these names alone
(docs/development.md maps the modules behind them). No gradio here.
"""

from demos.compute.heads.answering import (
    LLM,
    MAX_QUESTIONS_TOGETHER,
    MODE_GROUNDED,
    MODE_PROJECTED,
    VQAMode,
    answer_stream,
)
from demos.compute.heads.classification import classify, clear_caches, prefetch
from demos.compute.heads.decoding import MAX_NEW_TOKENS, stream_answer, stream_answers
from demos.compute.heads.labels import TOP_K, readable_label
from demos.compute.heads.probe_results import Classification
from demos.compute.heads.probes import (
                                        CPU_SHARED_CLIP,
                                        GPU_SHARED_CLIP,
                                        MAX_START_S,
                                        PROBE_NAMES,
                                        PROBES,
                                        SAMPLING_AUTO,
                                        SAMPLING_PAPER,
                                        SAMPLING_PER_PROBE,
                                        SAMPLING_SHARED,
                                        SAMPLINGS,
                                        protocol_cost,
                                        resolve_sampling,
                                        shared_clip,
                                        validate_request,
)
from demos.compute.heads.projector import VideoProjector
from demos.compute.heads.prompt import MAX_QUESTION_CHARS, build_inputs_embeds, grounded_prompt, validate_question
from demos.compute.heads.shared_encoder import load_heads, resident_encoders

__all__ = ["CPU_SHARED_CLIP", "GPU_SHARED_CLIP", "LLM", "MAX_NEW_TOKENS", "MAX_QUESTIONS_TOGETHER", "MAX_QUESTION_CHARS",
           "MAX_START_S", "MODE_GROUNDED", "MODE_PROJECTED", "PROBES", "PROBE_NAMES", "SAMPLINGS", "SAMPLING_AUTO",
           "SAMPLING_PAPER", "SAMPLING_PER_PROBE", "SAMPLING_SHARED", "TOP_K", "Classification", "VQAMode", "VideoProjector",
           "answer_stream", "build_inputs_embeds", "classify", "clear_caches", "grounded_prompt", "load_heads", "prefetch",
           "protocol_cost", "readable_label", "resident_encoders", "resolve_sampling", "shared_clip", "stream_answer",
           "stream_answers", "validate_question", "validate_request"]
