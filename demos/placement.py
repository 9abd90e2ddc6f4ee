"""Where a visitor's model work runs on ZeroGPU, and what a refusal changes: pure rules, no state, no clock.

The dispatcher (`demos.dispatcher`) gathers the inputs (a call's estimates, the learned start margins, whether a
worker is warm, the CPU work queued, a recent refusal) and follows the answers:

- `action_on_cpu`: whether a visitor's whole action runs on the Space's CPU from its start (a recent refusal), and
  why. The action is then planned for the CPU (`devices.models_on_gpu()` is False in it).
- `place`: where one call of a GPU function runs: the Space's CPU, a ZeroGPU worker, or nowhere (too slow for the
  CPU, after ZeroGPU refused the action), and why, in the words the page shows.
- `backs_off`: whether a refusal makes the visitors like this one plan for the CPU a while (`REFUSED_BACKOFF_S`).
- `asks_again`: whether a refused call is asked again at once instead of sending the action to the CPU.

Off ZeroGPU there is nothing to decide: every call runs in this process, on this machine's device.
"""

from __future__ import annotations

from dataclasses import dataclass

# What a GPU call costs a learner beyond its work: ZeroGPU's scheduling round trip and the hand-off to the worker
# (an estimate; the log of a ZeroGPU Space gives the real figure).
ZEROGPU_CALL_S = 1.0
# An action the Space's CPU finishes within this runs there even where a GPU would be faster: a learner barely
# notices, and the class keeps its shared GPU quota for the actions that need a GPU.
CPU_QUICK_S = 1.5
# The longest a learner is asked to wait for an action on the Space's CPU when ZeroGPU cannot run it; a longer
# one ends with a message saying when to retry.
CPU_PATIENCE_S = 30.0
# Visitors who are not signed in on huggingface.co (every learner on a course site) share one ZeroGPU quota. Once
# ZeroGPU has refused one of them, their actions plan for the CPU for this long before a GPU is asked again.
# Signed-in visitors have quotas of their own and always ask.
REFUSED_BACKOFF_S = 300.0

CPU = "cpu"  # the Space's CPU: its CPU copies of the models, in the one CPU thread
GPU = "gpu"  # a ZeroGPU worker
NOWHERE = "nowhere"  # not started: `why` is the message the learner reads


@dataclass(frozen=True)
class Placement:
    """Where one call runs, and why in the words the page shows ("" on a GPU: the page says nothing then)."""

    device: str  # CPU, GPU or NOWHERE
    why: str
    fallback: bool = False  # on the CPU because ZeroGPU could not run this action (the page says so)


def action_on_cpu(*, on_zero_gpu: bool, signed_in: bool, refused_why: str | None) -> str | None:
    """Why a visitor's whole action runs on the Space's CPU from its start, or None (its calls are placed one by
    one). `refused_why`: the last refusal of a visitor who was not signed in, while its back-off lasts (else None).
    Only visitors who are not signed in share the quota that refusal spoke of."""
    if not on_zero_gpu or signed_in:
        return None
    return refused_why


def too_slow_on_cpu(why: str, cpu_work_s: float) -> str:
    """What the learner reads when no GPU can run an action and the Space's CPU would take too long."""
    return (
        f"No GPU can run this right now ({why}), and on the Space's CPU it would take about {cpu_work_s:.0f} s, longer "
        f"than the {CPU_PATIENCE_S:.0f} s a learner should wait. Lighter settings (fewer frames, one shared clip) "
        "run on the CPU; or try again in a few minutes. Signed-in visitors have GPU time of their own: open this "
        "Space on huggingface.co and sign in there."
    )


def place(*, action_on_cpu: str | None, gpu_work_s: float, cpu_work_s: float, cpu_queued_s: float,
          worker_warm: bool, warm_start_s: float, cold_start_s: float) -> Placement:
    """Where one call of a GPU function runs on ZeroGPU.

    - `action_on_cpu`: why the action runs on the Space's CPU already (a refusal), or None;
    - `gpu_work_s`, `cpu_work_s`: the call's work on a GPU, and on this CPU (its estimates);
    - `cpu_queued_s`: the CPU work queued or running in the CPU thread before it;
    - `worker_warm`: whether an idle worker of this function is likely still warm; `warm_start_s`, `cold_start_s`:
      the start margins a call asks on a warm and on a fresh worker (learned).

    An action ZeroGPU could not run stays on the CPU, unless it would take longer than `CPU_PATIENCE_S` there. Else
    the GPU only where it pays: the CPU takes a call it finishes within `CPU_QUICK_S`, or no later than a GPU call
    would (ZeroGPU's round trip, a fresh worker's longer start, the work), counting the CPU work already waiting:
    in a lecture hall the GPU takes what the one CPU thread would only queue.
    """
    if action_on_cpu is not None:
        if cpu_work_s > CPU_PATIENCE_S:
            return Placement(NOWHERE, too_slow_on_cpu(action_on_cpu, cpu_work_s))
        return Placement(CPU, action_on_cpu, fallback=True)
    fresh_start_s = 0.0 if worker_warm else max(0.0, cold_start_s - warm_start_s)
    gpu_s = ZEROGPU_CALL_S + gpu_work_s + fresh_start_s
    if cpu_work_s + cpu_queued_s <= max(CPU_QUICK_S, gpu_s):
        return Placement(CPU, f"the Space's CPU does this in about {cpu_work_s:.1f} s, and it spends no GPU quota")
    return Placement(GPU, "")


def backs_off(*, kind: str, signed_in: bool) -> bool:
    """Whether a refusal of `kind` ("quota", "aborted", "failed") sends the next actions of the visitors who are not
    signed in to the CPU for `REFUSED_BACKOFF_S`: a quota refusal of one of them, whose quota they all share."""
    return kind == "quota" and not signed_in


def asks_again(*, kind: str, streams: bool, asked_again_before: bool, asked_s: int, would_ask_s: int) -> bool:
    """Whether a GPU call that ZeroGPU refused or failed is asked again at once (else the action runs again on the
    CPU): once, when it ran out of its time (`kind` "aborted") and what that abort taught asks more (`would_ask_s`
    over `asked_s`: it expected a warm worker and found a fresh one). Not a stream: its first items may have reached
    the page already, and a second call would show them again; the action's rerun on the CPU replaces it whole."""
    return kind == "aborted" and not streams and not asked_again_before and would_ask_s > asked_s
