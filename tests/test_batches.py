"""Work asked together, done once: `demos.batches.Batches`."""

from __future__ import annotations

import threading
import time

import pytest

from demos.batches import Batches


class Work:
    """A stream per batch that yields each request doubled, `steps` times, and waits at `gate` before its first step."""

    def __init__(self, steps: int = 3):
        self.steps, self.batches, self.closed = steps, [], []
        self.gates: list[threading.Event] = []

    def __call__(self, requests: list):
        self.batches.append(list(requests))
        gate = threading.Event()
        self.gates.append(gate)
        try:
            gate.wait(10)
            for step in range(self.steps):
                yield [f"{request}{request}:{step}" for request in requests]
        finally:
            self.closed.append(list(requests))

    def open(self, batch: int) -> None:
        deadline = time.monotonic() + 10
        while len(self.gates) <= batch:
            assert time.monotonic() < deadline, f"batch {batch} never started"
            time.sleep(0.01)
        self.gates[batch].set()


def asked(batches: Batches, work: Work, key, request, results: dict, lane=None, linger_s=0.0) -> threading.Thread:
    """A visitor's request in a thread of its own, its entries kept in `results[request]`."""

    def read():
        try:
            results[request] = list(batches.stream(key, request, work, lane, linger_s=linger_s))
        except Exception as error:  # noqa: BLE001 - the test reads it
            results[request] = error

    thread = threading.Thread(target=read)
    thread.start()
    return thread


def run_batches(work: Work, count: int, threads: list[threading.Thread]) -> None:
    """Let the first `count` batches run, and wait for every request."""
    for batch in range(count):
        work.open(batch)
    for thread in threads:
        thread.join(10)


def wait_for(condition, timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_a_lone_request_starts_at_once_and_reads_its_own_entries():
    batches, work, results = Batches(max_size=4), Work(), {}
    thread = asked(batches, work, "clip", "a", results)
    work.open(0)
    thread.join(10)
    assert work.batches == [["a"]]
    assert results["a"] == [("aa:0", 1), ("aa:1", 1), ("aa:2", 1)]


def test_requests_arriving_while_a_batch_runs_go_together_next_in_order_and_at_most_max_size():
    batches, work, results = Batches(max_size=3), Work(), {}
    threads = [asked(batches, work, "clip", "a", results)]
    wait_for(lambda: work.batches)  # "a" runs alone; the next ones wait for it
    for request in "bcdef":
        threads.append(asked(batches, work, "clip", request, results))
        time.sleep(0.05)
    assert work.batches == [["a"]] and batches.waiting() == 5
    run_batches(work, 3, threads)
    # the full batch before the one that formed after it
    assert work.batches == [["a"], ["b", "c", "d"], ["e", "f"]] and batches.waiting() == 0
    assert results["c"] == [("cc:0", 3), ("cc:1", 3), ("cc:2", 3)] and results["f"][-1] == ("ff:2", 2)


def test_other_keys_do_not_wait():
    batches, work, results = Batches(max_size=3), Work(), {}
    first = asked(batches, work, "clip one", "a", results)
    wait_for(lambda: len(work.batches) == 1)
    second = asked(batches, work, "clip two", "b", results)
    wait_for(lambda: len(work.batches) == 2)  # started while "a" still runs
    work.open(1)
    second.join(10)
    assert "a" not in results and results["b"][-1] == ("bb:2", 1)
    work.open(0)
    first.join(10)


def test_a_batch_waits_for_the_running_one_of_its_lane_even_with_another_key():
    """Work whose key says what is still to run (an encoder pass) waits for the batch that runs it, in the same lane,
    instead of running beside it; requests of the same key then go together."""
    batches, work, results = Batches(max_size=4), Work(), {}
    threads = [asked(batches, work, "pass to run", "a", results, lane="clip")]
    wait_for(lambda: work.batches)
    for key, request in [("pass to run", "b"), ("pass cached", "c"), ("pass cached", "d")]:
        threads.append(asked(batches, work, key, request, results, lane="clip"))
        time.sleep(0.05)
    time.sleep(0.2)
    assert work.batches == [["a"]]
    run_batches(work, 3, threads)
    assert work.batches == [["a"], ["b"], ["c", "d"]]


def test_a_lone_request_never_lingers():
    batches, work, results = Batches(max_size=4, busy_s=60), Work(), {}
    started = time.monotonic()
    thread = asked(batches, work, "clip", "a", results, linger_s=30)
    wait_for(lambda: work.batches, timeout_s=5)  # at once, not after 30 s
    work.open(0)
    thread.join(10)
    assert results["a"][-1] == ("aa:2", 1) and time.monotonic() - started < 5


def test_in_a_busy_lane_a_batch_lingers_for_companions_until_its_time_or_until_it_is_full():
    batches, work, results = Batches(max_size=3, busy_s=60), Work(), {}
    run_batches(work, 1, [asked(batches, work, "clip", "a", results)])  # the lane is busy from now on
    formed = time.monotonic()
    threads = [asked(batches, work, "clip", "b", results, linger_s=0.6)]
    time.sleep(0.1)
    threads.append(asked(batches, work, "clip", "c", results, linger_s=0.6))
    wait_for(lambda: len(work.batches) == 2)
    assert time.monotonic() - formed >= 0.6 and work.batches[1] == ["b", "c"]  # "c" came within "b"'s linger
    run_batches(work, 2, threads)
    # a batch that fills starts at once, whatever is left of its linger
    formed = time.monotonic()
    threads = [asked(batches, work, "clip", request, results, linger_s=30) for request in "def"]
    wait_for(lambda: len(work.batches) == 3, timeout_s=5)
    assert sorted(work.batches[2]) == ["d", "e", "f"]
    assert time.monotonic() - formed < 5
    run_batches(work, 3, threads)
    assert results["f"][-1] == ("ff:2", 3)


def test_a_lane_is_busy_only_for_busy_s_after_its_last_request():
    batches, work, results = Batches(max_size=3, busy_s=0.2), Work(), {}
    run_batches(work, 1, [asked(batches, work, "clip", "a", results)])
    time.sleep(0.3)  # nobody asked since: "b" is alone again
    thread = asked(batches, work, "clip", "b", results, linger_s=30)
    wait_for(lambda: len(work.batches) == 2, timeout_s=5)
    run_batches(work, 2, [thread])
    assert results["b"][-1] == ("bb:2", 1)


def test_a_member_who_leaves_stops_only_its_reading_and_the_last_one_closes_the_stream():
    batches, work = Batches(max_size=3), Work(steps=100)
    running = asked(batches, work, "clip", "a", {})
    wait_for(lambda: work.batches)
    readers = {}

    def join(request):  # "b" leads: its call returns once its batch starts
        readers[request] = batches.stream("clip", request, work)

    joining = [threading.Thread(target=join, args=(request,)) for request in "bc"]
    for thread in joining:
        thread.start()
        time.sleep(0.05)
    work.open(0)
    running.join(10)
    work.open(1)
    for thread in joining:
        thread.join(10)
    b, c = readers["b"], readers["c"]
    assert next(b) == ("bb:0", 2) and next(c) == ("cc:0", 2)
    b.close()
    assert [next(c) for _ in range(3)] == [("cc:1", 2), ("cc:2", 2), ("cc:3", 2)]  # "c" reads on
    c.close()
    wait_for(lambda: work.closed == [["a"], ["b", "c"]])  # nobody reads: the stream is closed long before its end


def test_an_error_ends_every_members_stream():
    batches = Batches(max_size=3)
    gate = threading.Event()

    def fails(requests):
        gate.wait(10)
        yield [request for request in requests]
        raise RuntimeError("the device failed")

    results: dict = {}
    blocker = threading.Thread(target=lambda: results.setdefault("a", list(batches.stream("clip", "a", lambda r: iter(
        [list(r)] if gate.wait(10) else [])))))
    blocker.start()
    time.sleep(0.1)
    readers = [threading.Thread(target=lambda request=request: results.setdefault(request, _read_all(
        batches.stream("clip", request, fails)))) for request in "bc"]
    for reader in readers:
        reader.start()
        time.sleep(0.05)
    gate.set()
    for thread in (blocker, *readers):
        thread.join(10)
    for request in "bc":
        entries, error = results[request]
        assert entries == [(request, 2)] and isinstance(error, RuntimeError) and "the device failed" in str(error)


def _read_all(stream) -> tuple[list, Exception | None]:
    entries = []
    try:
        for entry in stream:
            entries.append(entry)
    except Exception as error:  # noqa: BLE001 - the test reads it
        return entries, error
    return entries, None


@pytest.mark.parametrize("size", [0, -1])
def test_a_batch_holds_at_least_one_request(size):
    with pytest.raises(ValueError):
        Batches(max_size=size)
