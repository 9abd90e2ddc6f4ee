"""A class on the free ZeroGPU Space, imitated: learners on a course site (no ZeroGPU token) share one small quota.

The app runs as on a ZeroGPU Space (conftest's `zerogpu_env`: the real `spaces` package, in a subprocess), against
Hugging Face's device service imitated in a thread of this process (`offline.zerogpu_service`). ZeroGPU's rules apply:
the client sends what the app asks times its GPU's factor (x 1.5 on the RTX PRO 6000), a call is admitted only when
the shared quota left covers that, the quota is charged it whole (the strict reading), and a call that runs past it is
aborted (the service kills its worker). The lesson: every learner works through the four concepts' endpoints, first
the page's example (the same request for everyone), then a request of their own. Every action must return a result,
the GPU refusals must end on the Space's CPU, and the page must say so; every answer must be the one the app gives off
ZeroGPU, whether a worker or the Space's CPU copies computed it.
"""

import threading

import pytest
from conftest import EXAMPLE_IMAGES, ROOT, RTX_PRO_6000_FACTOR, start_app, stop_app, zerogpu_env
from gradio_client import Client, handle_file
from same_answers import COMPARED, differences, planned_for

from demos import zerogpu
from demos.tabs import heads
from offline.zerogpu_service import Rules, ZeroGpuService, visitor_token

pytestmark = pytest.mark.slow  # the app in a process of its own

LEARNERS = 8
# The Space's first GPU call asks the assumed cold start and a second of work (7 s), a warm one about 2 s: the quota
# covers one of each as the client sends them (10 s + 3 s), then refuses.
QUOTA_S = round((zerogpu.GPU_COLD_START_S + 1) * RTX_PRO_6000_FACTOR) + round(2 * RTX_PRO_6000_FACTOR)
CALL_TIMEOUT_S = 300
VIDEO = str(ROOT / "examples" / "videos" / "ball_behind_wall.mp4")
CLIP = str(ROOT / "examples" / "videos" / "cup_covers_ball.mp4")


def lesson(learner: int) -> list[tuple[str, tuple]]:
    """(endpoint, arguments) of one learner's lesson: each concept's example, then a request of their own."""
    image, video, clip = handle_file(str(EXAMPLE_IMAGES[1])), handle_file(VIDEO), handle_file(CLIP)
    return [
        ("/mae_reconstruct", (image, 0.75, 0, "vit-mae-base")),
        ("/mae_reconstruct", (image, 0.75, learner + 1, "vit-mae-base")),
        ("/compare_pixels_embeddings", (image, 2, 2, 3, 3)),
        ("/compare_pixels_embeddings", (image, learner % 4, 3, 2, 2)),
        ("/tube_predict", (video, 0.0, 8, 2, 0, 3, 3, 3, 3, 0, 3)),
        ("/tube_predict", (video, 0.0, 8, 2, 0, learner % 5, 2, 2, 2, 0, 3)),
        ("/classify_action", (clip, 0.0, "auto")),
        ("/answer_question", (clip, 0.0, heads.EXAMPLE_QUESTION, "auto")),
    ]


@pytest.fixture(scope="module")
def classroom(tiny_hub, tmp_path_factory):
    with ZeroGpuService(Rules(quota_s=QUOTA_S, charge="requested")) as service:
        server, _, url = start_app([], zerogpu_env(tiny_hub, service, tmp_path_factory.mktemp("classroom")),
                                   timeout_s=240)
        yield url, service
    stop_app(server)  # after the service has ended the Space's workers, while the app still holds their ids


@pytest.fixture(scope="module")
def lessons(classroom) -> dict[int, list]:
    """Every learner's lesson, all at once: {learner: [(endpoint, its outputs or the exception it raised)]}."""
    url, _ = classroom
    answers: dict[int, list] = {}

    # One page each (gradio sessions, no ZeroGPU token), opened one after another as a class's pages load.
    clients = [Client(url, verbose=False) for _ in range(LEARNERS)]

    def learn(learner: int) -> None:
        client = clients[learner]
        answers[learner] = []
        for endpoint, args in lesson(learner):
            try:
                outputs = client.submit(*args, api_name=endpoint).result(timeout=CALL_TIMEOUT_S)
                answers[learner].append((endpoint, outputs))
            except Exception as error:  # noqa: BLE001 - every failure is what the tests count
                answers[learner].append((endpoint, error))

    learners = [threading.Thread(target=learn, args=(i,)) for i in range(LEARNERS)]
    for learner in learners:
        learner.start()
    for learner in learners:
        learner.join()
    return answers


def test_every_learner_gets_every_answer_on_one_small_quota(classroom, lessons):
    _, service = classroom
    answers = lessons
    failures = [(endpoint, result) for results in answers.values() for endpoint, result in results
                if isinstance(result, Exception)]
    assert not failures, failures
    assert sum(len(results) for results in answers.values()) == LEARNERS * len(lesson(0))

    requests = service.records()
    refused = [r for r in requests if r["outcome"] == "refused"]
    assert refused and not any(r["signed_in"] for r in requests), requests  # the quota ran out
    assert sum(r["charged"] for r in requests) <= QUOTA_S, requests
    # A worker's error would end its call "failed" and hide behind the CPU's rerun: only the quota and the clock end one.
    assert not [r for r in requests if r["outcome"] == "failed"], requests
    numbers = [outputs[-1] for results in answers.values() for _, outputs in results]
    fell_back = [n for n in numbers if any(run["fallback"] for run in n.get("ran_on", []))]
    assert fell_back, "after the refusals the actions ran on the Space's CPU"
    summaries = [outputs[-2] for results in answers.values() for endpoint, outputs in results
                 if endpoint in ("/mae_reconstruct", "/tube_predict")]
    summaries += [outputs[-3] for results in answers.values() for endpoint, outputs in results
                  if endpoint == "/classify_action"]
    assert any("Ran on the Space's CPU" in text and "not signed in" in text for text in summaries)
    # The examples every learner sent were computed once and served from the shared result cache.
    from_cache = [n.get("from_result_cache") for n in numbers]
    assert from_cache.count(True) >= 4 * (LEARNERS - 1), from_cache
    # 6.1 runs on the Space's CPU, which does it in a second or two; it goes to a GPU only while the CPU is busy with
    # other learners' work (their refused actions). (6.2-6.3 compares a still image as a GPU's 16-frame clip on
    # ZeroGPU: that asks a GPU.)
    quick = [run for results in answers.values() for endpoint, outputs in results
             if endpoint == "/mae_reconstruct" for run in outputs[-1].get("ran_on", [])]
    placed_on_cpu = [run for run in quick if run["device"] == "cpu" and not run["fallback"]]
    assert len(placed_on_cpu) > len(quick) / 2, quick


def test_every_learner_gets_the_answer_the_app_gives_off_zerogpu(lessons, client):
    # Each answer is the in-process app's to the same request, planned as the ZeroGPU app planned it: for the Space's
    # CPU where the action fell back there (its CPU copies computed it), else for a GPU. Requests served with no model
    # work (a ratio from a sweep) say nothing about a device.
    expected: dict[tuple, tuple] = {}
    compared = 0
    for learner, results in lessons.items():
        for (endpoint, ours), (_, args) in zip(results, lesson(learner), strict=True):
            runs = [] if isinstance(ours, Exception) else ours[-1].get("ran_on", [])
            if endpoint not in COMPARED or not runs:
                continue
            plan = "cpu" if any(run["fallback"] for run in runs) else "cuda"
            key = (endpoint, repr(args), plan)
            if key not in expected:
                with planned_for(plan):
                    expected[key] = client.submit(*args, api_name=endpoint).result(timeout=CALL_TIMEOUT_S)
            assert not differences(endpoint, ours, expected[key]), (learner, endpoint, args, runs,
                                                                    differences(endpoint, ours, expected[key]))
            compared += 1
    assert compared > LEARNERS * len(lesson(0)) / 2, compared
    assert any(plan == "cpu" for *_, plan in expected), "the fallbacks' answers were compared too"


@pytest.fixture(scope="module")
def app_without_quota(tiny_hub, tmp_path_factory):
    with ZeroGpuService(Rules(quota_s=0, token_quota_s=0)) as service:
        server, _, url = start_app([], zerogpu_env(tiny_hub, service, tmp_path_factory.mktemp("no-quota")),
                                   timeout_s=240)
        yield url, service
    stop_app(server)


@pytest.mark.browser
def test_the_page_says_in_one_line_that_it_ran_on_the_cpu_and_why(app_without_quota, browser, artifacts_dir):
    url, _ = app_without_quota
    page = browser.new_page(viewport={"width": 800, "height": 1000})
    page.goto(url + "tube-masking")
    note = page.locator("#tubes-summary").get_by_text("Ran on the Space's CPU")
    note.wait_for(timeout=180_000)
    text = page.locator("#tubes-summary").inner_text()
    assert "not signed in on huggingface.co" in text and "sign in there" in text, text
    page.screenshot(path=str(artifacts_dir / "cpu-note-tube-masking.png"), full_page=True)
    page.close()


def test_a_signed_in_visitor_is_refused_with_their_own_quota_and_still_answered(app_without_quota):
    url, service = app_without_quota
    before = len(service.records())
    client = Client(url, verbose=False, headers={"X-IP-Token": visitor_token("a-visitor")})
    # A tube no sweep covers (the page's sweep is of its opening 2x2 tube): it needs a device.
    *_, summary, numbers = client.predict(handle_file(VIDEO), 0.0, 8, 2, 0, 1, 1, 3, 3, 0, 3, api_name="/tube_predict")
    assert numbers["ran_on"] and all(run["device"] == "cpu" and run["fallback"] for run in numbers["ran_on"])
    assert "your ZeroGPU quota is used up" in summary and "sign in there" not in summary
    requests = service.records()[before:]
    assert requests and all(r["signed_in"] and r["outcome"] == "refused" for r in requests), requests
