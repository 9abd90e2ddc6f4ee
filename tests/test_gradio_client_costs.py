"""What gradio_client costs the machine it runs on, beside the Space's answer.

gradio_client makes every upload, queue join and download with httpx's one-off functions (`httpx.post`,
`httpx.stream`): each builds a new client, and so a new SSL context that reads the CA bundle, even for an http://
Space. The classroom bench runs thirty learners on the Space's own machine, so it gives them one shared context
(`bench.bench_classroom.LEARNER_CLIENT`); these tests show the defect and that the workaround removes it.
"""

from __future__ import annotations

import ssl

import pytest
from conftest import EXAMPLE_IMAGES
from gradio_client import Client, handle_file


@pytest.fixture
def contexts_built(monkeypatch):
    """How many SSL contexts with the default CA bundle are built from now on."""
    built = []
    real = ssl.create_default_context

    def counted(*args, **kwargs):
        built.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(ssl, "create_default_context", counted)
    return built


def test_gradio_client_builds_an_ssl_context_for_each_upload_join_and_download(running_app,
 contexts_built):
    client = Client(running_app.local_url, verbose=False)
    contexts_built.clear()
    client.predict(handle_file(str(EXAMPLE_IMAGES[0])), 0.75, 0, "vit-mae-base", api_name="/mae_reconstruct")
    assert len(contexts_built) >= 3  # the upload, the join, each picture downloaded: one each, for an http:// URL


def test_the_learners_of_the_classroom_bench_share_one_context(running_app, contexts_built):
    from bench.bench_classroom import LEARNER_CLIENT

    client = Client(running_app.local_url, verbose=False, **LEARNER_CLIENT)
    contexts_built.clear()
    client.predict(handle_file(str(EXAMPLE_IMAGES[0])), 0.75, 0, "vit-mae-base", api_name="/mae_reconstruct")
    assert contexts_built == []
