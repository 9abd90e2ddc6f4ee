"""`python app.py --offline-demo`: the whole UI on tiny random-weight models, with a banner saying so."""

import os

import pytest
from concept_calls import CONCEPTS, call_example, check_result
from conftest import start_app, stop_app

pytestmark = pytest.mark.slow  # the app in a process of its own


@pytest.fixture(scope="module")
def offline_demo_app(tmp_path_factory):
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path_factory.mktemp("empty-hf-cache")), "HF_HUB_OFFLINE": "1"}
    server, client, url = start_app(["--offline-demo"], env, timeout_s=180)
    yield url, client
    stop_app(server)


def test_banner_says_outputs_are_meaningless(offline_demo_app):
    import httpx

    url, _ = offline_demo_app
    config = httpx.get(url + "config", timeout=30).json()
    banners = [c for c in config["components"] if c.get("props", {}).get("elem_id") == "offline-demo-banner"]
    assert len(banners) == 1 + len(CONCEPTS)  # on `/` and on every concept page
    assert all("Offline demo mode" in b["props"]["value"] and "meaningless" in b["props"]["value"] for b in banners)


@pytest.mark.parametrize("tab_id", list(CONCEPTS))
def test_every_concept_answers_without_the_hub(offline_demo_app, tab_id):
    _, client = offline_demo_app
    check_result(call_example(client, CONCEPTS[tab_id]))


def test_the_deployed_check_answers_everything_and_judges_no_promise(offline_demo_app, capsys):
    from checks import deployed

    url, _ = offline_demo_app
    assert deployed.main([url]) == 0
    out = capsys.readouterr().out
    assert "not judged: random weights" in out and "| FAIL |" not in out and "FAIL:" not in out
