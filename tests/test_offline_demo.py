"""`python app.py --offline-demo`: the whole UI on tiny random-weight models, with a banner saying so."""

import os

import pytest
from conftest import EXAMPLE_IMAGES, start_app
from gradio_client import handle_file


@pytest.fixture(scope="module")
def offline_demo_app(tmp_path_factory):
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path_factory.mktemp("empty-hf-cache")), "HF_HUB_OFFLINE": "1"}
    server, client, url = start_app(["--offline-demo"], env, timeout_s=180)
    yield url, client
    server.terminate()
    server.wait(timeout=30)


def test_banner_says_outputs_are_meaningless(offline_demo_app):
    import httpx

    url, _ = offline_demo_app
    config = httpx.get(url + "config", timeout=30).json()
    texts = [c.get("props", {}).get("value") or "" for c in config["components"]]
    assert any("Offline demo mode" in str(t) and "meaningless" in str(t) for t in texts)


def test_every_tab_answers_without_the_hub(offline_demo_app):
    _, client = offline_demo_app
    numbers = client.predict(handle_file(str(EXAMPLE_IMAGES[0])), 0.75, 0, "vit-mae-base",
                             api_name="/mae_reconstruct")[-1]
    assert numbers["num_hidden"] == 147
    numbers = client.predict(handle_file(str(EXAMPLE_IMAGES[1])), 1, 1, 2, 2,
                             api_name="/compare_pixels_embeddings")[-1]
    assert -1.0 <= numbers["mean_cosine"] <= 1.0
