"""The shared result cache: identical requests run once, streams are shared while they run, the cache stays bounded."""

import shutil
import threading
import time

import numpy as np
import pytest

from demos import results


@pytest.fixture
def cache(tmp_path):
    return results.ResultCache(max_entries=3, max_bytes=10_000, folder=tmp_path / "kept")


def test_identical_requests_sent_at_once_run_once(cache):
    runs, started = [], threading.Event()

    def compute():
        runs.append(1)
        started.set()
        time.sleep(0.3)  # the others arrive while it runs
        return ("result", {"n": len(runs)})

    answers = []
    threads = [threading.Thread(target=lambda: answers.append(cache.get_or_compute("k", compute))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(runs) == 1 and len(answers) == 8
    assert all(value == ("result", {"n": 1}) for value, _ in answers)
    assert sorted(hit for _, hit in answers) == [False] + [True] * 7
    assert cache.get_or_compute("k", compute) == (("result", {"n": 1}), True) and len(runs) == 1


def test_a_failed_run_stores_nothing_and_the_waiting_request_runs_it_itself(cache):
    first_may_fail, calls = threading.Event(), []

    def compute():
        calls.append(threading.current_thread().name)
        if len(calls) == 1:
            first_may_fail.wait(5)
            raise RuntimeError("the GPU went away")
        return ("second try",)

    failed = []

    def first():
        try:
            cache.get_or_compute("k", compute)
        except RuntimeError as error:
            failed.append(error)

    leader = threading.Thread(target=first)
    leader.start()
    while not calls:
        time.sleep(0.01)
    follower_answer = []
    follower = threading.Thread(target=lambda: follower_answer.append(cache.get_or_compute("k", compute)))
    follower.start()
    time.sleep(0.1)
    first_may_fail.set()
    leader.join()
    follower.join()
    assert failed and follower_answer == [(("second try",), False)] and len(calls) == 2


def test_a_follower_of_a_stream_gets_every_item_then_the_rest_as_they_come(cache):
    produced, may_finish = threading.Event(), threading.Event()

    def answer():
        yield ("The",)
        yield ("The ball",)
        produced.set()
        may_finish.wait(5)
        yield ("The ball rolls.",)

    leader_items = []
    leader = threading.Thread(target=lambda: leader_items.extend(cache.stream_or_compute("q", answer)))
    leader.start()
    produced.wait(5)
    follower = cache.stream_or_compute("q", answer)
    assert [next(follower), next(follower)] == [(("The",), True), (("The ball",), True)]
    may_finish.set()
    assert list(follower) == [(("The ball rolls.",), True)]
    leader.join()
    assert [item for item, _ in leader_items] == [("The",), ("The ball",), ("The ball rolls.",)]
    assert list(cache.stream_or_compute("q", answer)) == [(("The ball rolls.",), True)]  # stored: the last item


def test_a_stream_closed_early_is_not_stored_and_its_follower_runs_it(cache):
    calls = []

    def answer():
        calls.append(1)
        yield ("first",)
        yield ("whole",)

    leader = cache.stream_or_compute("q", answer)
    next(leader)
    follower = cache.stream_or_compute("q", answer)
    assert next(follower) == (("first",), True)
    leader.close()  # the visitor left
    assert list(follower) == [(("first",), False), (("whole",), False)] and len(calls) == 2


def test_entries_and_bytes_are_bounded_and_an_evicted_entry_takes_its_files(cache, tmp_path):
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"x" * 100)
    value, _ = cache.get_or_compute("video", lambda: (str(video), "summary"))
    kept = value[0]
    assert kept != str(video) and open(kept, "rb").read() == b"x" * 100
    video.unlink()  # the renderer's own copy may go: the cache has its own
    for key in "abc":
        cache.get_or_compute(key, lambda: (np.zeros(10, np.uint8),))
    assert len(cache) == 3 and not (tmp_path / "kept" / "video").exists()  # least recently used out, with its file
    cache.get_or_compute("big", lambda: (np.zeros(6_000, np.uint8),))
    cache.get_or_compute("bigger", lambda: (np.zeros(6_000, np.uint8),))
    assert len(cache) == 1  # 12,000 bytes do not fit in 10,000: the least recently used went until "bigger" fit
    cache.get_or_compute("too big", lambda: (np.zeros(20_000, np.uint8),))
    assert cache.get_or_compute("too big", lambda: ("again",))[1] is False  # never stored


def test_a_request_key_reads_files_by_content_and_numbers_by_value(tmp_path):
    one, two = tmp_path / "a.png", tmp_path / "b.png"
    one.write_bytes(b"same picture")
    shutil.copy(one, two)
    assert results.request_key("mae", [str(one), 0.75, 0]) == results.request_key("mae", [str(two), 0.75, 0.0])
    assert results.request_key("mae", [str(one), 0.75, 1]) != results.request_key("mae", [str(one), 0.75, 0])
    assert results.request_key("mae", [str(one)]) != results.request_key("tube", [str(one)])
    two.write_bytes(b"another picture")
    assert results.request_key("mae", [str(one)]) != results.request_key("mae", [str(two)])
    assert results.request_key("mae", [object()]) is None  # nothing to key it by: not cached
