"""The one exception type a learner is meant to read, and the checks of numbers that raise it.

Compute code raises `UserError` with a sentence a learner understands; the page's handlers
(`demos.tabs.actions`) turn it into a `gr.Error`. Keeping gradio out of here lets the
compute modules run and be tested without a UI.
"""


class UserError(Exception):
    """A problem with the input or the set-up that the user can fix (bad file, absurd value, no weights)."""


class NeedsGpu(UserError):
    """The action runs on the Space's CPU here, but a model it needs has no CPU copy (the Space's memory had no room
    for one): only a GPU can run it."""


def number(name: str, value, *, minimum: float | None = None, maximum: float | None = None) -> float:
    """`value` as a finite float within the bounds, else a UserError that names the control (`name`)."""
    try:
        result = float(value)
    except (TypeError, ValueError):
        raise UserError(f"{name} must be a number, not {value!r}.") from None
    if result != result or result in (float("inf"), float("-inf")):
        raise UserError(f"{name} must be a finite number, not {value!r}.")
    if minimum is not None and result < minimum:
        raise UserError(f"{name} must be at least {minimum:g}; got {result:g}.")
    if maximum is not None and result > maximum:
        raise UserError(f"{name} must be at most {maximum:g}; got {result:g}.")
    return result


def whole_number(name: str, value, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """Like `number`, and a whole number (API callers can send 2.5 where a slider would not)."""
    result = number(name, value, minimum=minimum, maximum=maximum)
    if result != int(result):
        raise UserError(f"{name} must be a whole number; got {result:g}.")
    return int(result)


def brief(error: Exception) -> str:
    """An exception's message, cut short enough to quote inside a sentence for the learner."""
    text = str(error).strip() or type(error).__name__
    return text if len(text) <= 120 else text[:117] + "..."
