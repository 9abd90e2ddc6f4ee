"""The fake `spaces` (tests/fake_spaces) keeps ZeroGPU's contract: it forks, pickles, streams and re-raises."""

import asyncio
import importlib
import multiprocessing
import os
import pickle
import sys
import time
from pathlib import Path

import gradio as gr
import pytest
from conftest import FAKE_SPACES


@pytest.fixture
def spaces(monkeypatch):
    """The fake `spaces` module, imported the way the app imports the real one, with ZeroGPU switched on."""
    monkeypatch.syspath_prepend(str(FAKE_SPACES))
    monkeypatch.delitem(sys.modules, "spaces", raising=False)
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    module = importlib.import_module("spaces")
    assert Path(module.__file__).is_relative_to(FAKE_SPACES)
    module.requested.clear()
    return module


def test_without_zerogpu_the_function_comes_back_unchanged(spaces, monkeypatch):
    monkeypatch.delenv("SPACES_ZERO_GPU")

    def work():
        return os.getpid()

    assert spaces.GPU(work) is work
    assert spaces.GPU(duration=5, size="xlarge")(work) is work


def test_a_call_runs_in_a_forked_child_on_pickled_copies(spaces):
    @spaces.GPU(duration=lambda items, scale: 10 + len(items))
    def work(items, scale):
        items.append("added in the child")  # a copy: the caller's list must not change
        return os.getpid(), [item * scale for item in items[:-1]]

    items = [1, 2, 3]
    pid, scaled = work(items, scale=2)
    assert pid != os.getpid()
    assert scaled == [2, 4, 6] and items == [1, 2, 3]
    assert spaces.requested == [spaces.Request(work.__qualname__, 13, "large")]


def test_bare_decorator_asks_for_the_default_60_seconds(spaces):
    @spaces.GPU
    def work():
        return "done"

    assert work() == "done"
    assert spaces.requested == [spaces.Request(work.__qualname__, 60, "large")]


def test_a_generator_streams_each_item_before_it_ends(spaces):
    second_may_come = multiprocessing.get_context("fork").Event()

    @spaces.GPU(duration=5)
    def stream():
        yield os.getpid()
        if not second_may_come.wait(timeout=30):  # set by the caller only once it has the first item
            raise TimeoutError("the first item never reached the caller")
        yield "second"

    items = stream()
    child_pid = next(items)
    second_may_come.set()
    assert child_pid != os.getpid()
    assert list(items) == ["second"]


def test_gr_error_keeps_its_message_and_other_exceptions_only_their_class_name(spaces):
    @spaces.GPU(duration=5)
    def refuse(kind):
        if kind == "gradio":
            raise gr.Error("That clip is too long.")
        raise ValueError("a message ZeroGPU does not pass on")

    with pytest.raises(gr.Error) as raised:
        refuse("gradio")
    assert raised.value.message == "That clip is too long."
    with pytest.raises(gr.Error) as raised:
        refuse("other")
    assert raised.value.message == "ValueError" and raised.value.title == "ZeroGPU worker error"


def test_an_exception_in_a_generator_reaches_the_caller_after_the_items_before_it(spaces):
    @spaces.GPU(duration=5)
    def stream():
        yield 1
        raise gr.Error("stopped")

    items = stream()
    assert next(items) == 1
    with pytest.raises(gr.Error, match="stopped"):
        next(items)


def test_what_does_not_pickle_fails(spaces):
    @spaces.GPU(duration=5)
    def echo(value):
        return value

    @spaces.GPU(duration=5)
    def give_a_lambda():
        return lambda: None

    with pytest.raises(pickle.PicklingError):
        echo(lambda: None)  # in the caller, before any child starts: a progress lambda fails so
    with pytest.raises(gr.Error):
        give_a_lambda()


def test_a_hung_child_is_killed_and_the_call_aborted(spaces, monkeypatch):
    monkeypatch.setattr(spaces, "timeout", 1.0)

    @spaces.GPU(duration=5)
    def hang():
        time.sleep(60)

    with pytest.raises(gr.Error, match="GPU task aborted"):
        hang()


def test_durations_under_a_second_sizes_and_async_functions_are_refused(spaces):
    @spaces.GPU(duration=lambda: 0.5)
    def quick():
        return 1

    with pytest.raises(ValueError, match="0 s"):
        quick()
    with pytest.raises(ValueError, match="size"):
        spaces.GPU(size="medium")(quick)

    async def later():
        await asyncio.sleep(0)

    with pytest.raises(NotImplementedError):
        spaces.GPU(later)


@pytest.fixture
def visitor():
    """Make the calls in a test come from a visitor with a ZeroGPU token (as gradio's request carries it), or not."""
    from types import SimpleNamespace

    from gradio.context import LocalContext

    def as_visitor(token=None):
        LocalContext.request.set(SimpleNamespace(headers={"x-ip-token": token} if token else {}))

    yield as_visitor
    LocalContext.request.set(None)


def test_a_call_is_admitted_only_while_the_quota_covers_what_it_asks_times_the_factor(spaces, monkeypatch, visitor):
    monkeypatch.setenv("FAKE_SPACES_QUOTA_S", "10")
    monkeypatch.setenv("FAKE_SPACES_TOKEN_QUOTA_S", "4")
    monkeypatch.setenv("FAKE_SPACES_CHARGE", "requested")

    @spaces.GPU(duration=3)  # 3 s x 1.5 = 4.5, sent as 4 (rounded half to even, as the client does)
    def work():
        return "done"

    visitor(None)
    assert work() == "done" and work() == "done"  # 8 of the 10 s that visitors without a token share
    with pytest.raises(gr.Error) as refused:
        work()
    assert refused.value.title == "ZeroGPU quota exceeded"
    assert refused.value.message.startswith("Space app has reached its GPU limit. Try re-running outside of examples")
    visitor("a signed-in visitor")  # a quota of their own
    assert work() == "done"
    with pytest.raises(gr.Error, match=r"exceeded your free ZeroGPU quota \(4s requested vs. 0s left\)"):
        work()


def test_with_every_gpu_busy_a_call_waits_then_times_out(spaces, monkeypatch, visitor):
    import threading

    monkeypatch.setenv("FAKE_SPACES_GPUS", "1")
    monkeypatch.setenv("FAKE_SPACES_QUEUE_TIMEOUT_S", "0.5")
    release = multiprocessing.get_context("fork").Event()

    @spaces.GPU(duration=5)
    def hold():
        release.wait(10)

    visitor(None)
    holder = threading.Thread(target=hold)
    holder.start()
    time.sleep(0.5)
    try:
        with pytest.raises(gr.Error, match="No GPU was available after 60s") as refused:
            hold()
        assert refused.value.title == "ZeroGPU quota exceeded"  # what a visitor without a token is told
        visitor("token")
        with pytest.raises(gr.Error, match="No GPU was available after 60s") as refused:
            hold()
        assert refused.value.title == "ZeroGPU queue timeout"
    finally:
        release.set()
        holder.join()
