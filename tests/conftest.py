"""Offline test set-up: tiny random-weight checkpoints under the real hub ids.

The Hugging Face Hub cannot be reached from our machines. Before anything imports huggingface_hub,
point its cache at a fresh temporary folder and switch it offline; the `tiny_hub` fixture then writes
tiny replicas of every checkpoint there (see `offline/replicas.py`), so `from_pretrained("facebook/...")` runs
the same code path as in production.
"""

import contextlib
import os
import shutil
import sys
import tempfile
from pathlib import Path

_CACHE = tempfile.mkdtemp(prefix="pdr-test-hf-cache-")
os.environ["HF_HUB_CACHE"] = _CACHE
os.environ["HF_HUB_OFFLINE"] = "1"
# Sweeps kept on disk (`demos.sweeps`) in a folder of this run's own: the replicas' random weights live under fixed
# ids.
os.environ["PDR_SWEEP_DIR"] = tempfile.mkdtemp(prefix="pdr-test-sweeps-")
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ.setdefault("PDR_DTYPE", "float32")  # exact comparisons; bf16 speed is the benchmark's business
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
from demos import examples  # noqa: E402  (after the paths above)

# tests/zerogpu runs in a ZeroGPU Space's process of its own (tests/test_zerogpu_dispatcher.py starts it): only there.
if os.environ.get("SPACES_ZERO_GPU", "").lower() not in ("1", "t", "true"):
    collect_ignore = ["zerogpu"]

EXAMPLE_IMAGES = examples.images()


def counted_calls(monkeypatch, module, name: str) -> list:
    """Each call of `module.name` from now on, its positional arguments (the function still runs). A GPU function keeps
    its undecorated body (`.plain`), which other GPU functions call."""
    calls, original = [], getattr(module, name)

    def counted(*args, **kwargs):
        calls.append(args)
        return original(*args, **kwargs)

    if hasattr(original, "plain"):
        counted.plain = original.plain
    monkeypatch.setattr(module, name, counted)
    return calls


@pytest.fixture(scope="session")
def tiny_hub() -> Path:
    """The test Hugging Face cache, filled with tiny replicas of every registered checkpoint."""
    from huggingface_hub import constants as hf_constants

    import checkpoints
    from offline import replicas

    assert hf_constants.HF_HUB_OFFLINE, "tests must never reach the Hub"
    assert hf_constants.HF_HUB_CACHE == _CACHE
    for ckpt in checkpoints.REGISTRY.values():
        replicas.write_checkpoint(ckpt, Path(_CACHE), size="tiny")
    checkpoints.use_cache_dir(None)
    yield Path(_CACHE)
    checkpoints.use_cache_dir(None)  # forget the models loaded from it


@pytest.fixture(scope="session")
def running_app(tiny_hub):
    """The whole app, launched once in-process on tiny checkpoints."""
    import app

    demo = app.build_app()
    demo.launch(prevent_thread_lock=True, quiet=True, **app.LAUNCH_OPTIONS)
    yield demo
    demo.close()


@pytest.fixture(scope="session")
def client(running_app):
    """A gradio_client connected to the running app: the way scripts call the Space."""
    from gradio_client import Client

    return Client(running_app.local_url, verbose=False)


@pytest.fixture(scope="session")
def tokenizer():
    """A byte-level BPE trained here, with Qwen's special tokens and chat template."""
    from offline.tiny_llm import build_tiny_tokenizer

    return build_tiny_tokenizer()


@pytest.fixture(scope="session")
def llm(tokenizer):
    """A tiny random-weight Qwen2 LLM matching `tokenizer`."""
    from offline.tiny_llm import build_tiny_llm

    return build_tiny_llm(tokenizer)


@pytest.fixture
def example_image():
    from demos import images

    return images.load_image(EXAMPLE_IMAGES[0])


CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Our machines have no network: without these flags Chromium keeps trying to reach Google's hosts.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="session")
def browser(running_app):
    """Headless Chromium (Debian's, driven by Playwright), for tests that open pages of the running app."""
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI"):
            pytest.fail("CI must install Debian's chromium (see .ci/run)")
        pytest.skip("Debian's chromium is not installed here (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def browser_page(browser, running_app):
    """The whole app (`/`, four tabs) open in headless Chromium.

    Tests select their tab first (`page.get_by_role("tab", name=...).click()`).
    """
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(running_app.local_url)
    yield page
    page.close()


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """Where browser tests save their screenshots: $PDR_ARTIFACTS, or tests/artifacts/ (git-ignored)."""
    folder = Path(os.environ.get("PDR_ARTIFACTS") or ROOT / "tests" / "artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


RTX_PRO_6000_FACTOR = 1.5  # what the `spaces` client multiplies a duration by on zerogpu_env's default GPU


def zerogpu_env(tiny_hub, service, folder: Path, *, gpu_model: str | None = None) -> dict:
    """The environment of `python app.py` as on a ZeroGPU Space, on this CPU: the real `spaces` package, talking to
    `service` (Hugging Face's side, imitated: `offline.zerogpu_service`), every model resident on "cuda" under its
    emulation and packed at launch into `folder`, each worker reading the weights back onto this CPU; the tiny
    replicas offline. The driver reports `gpu_model` (default: ZeroGPU's RTX PRO 6000, duration factor 1.5). The
    Space's CPU has a fixed pace, whatever this machine's, so that where an action runs does not depend on the machine
    the tests run on: fp32 on the estimates' CPU (1.7x its bf16 time). Its sweeps are kept in `folder`: none from
    another app of this run answers for it. OpenMP's threads sleep while they wait: the Space's CPU thread and its
    workers each use every core of a machine that other processes share, and spinning threads there make every
    operation tens of times slower."""
    from offline import zerogpu_service

    folder = Path(folder)
    return {**os.environ, "PDR_CPU_PACE": "1.7", "HF_HUB_CACHE": str(tiny_hub), "HF_HUB_OFFLINE": "1",
            "PDR_SWEEP_DIR": str(folder / "sweeps"), "GRADIO_TEMP_DIR": str(folder / "gradio"),
            "OMP_WAIT_POLICY": "PASSIVE",
            **zerogpu_service.environment(service, gpu_model=gpu_model or zerogpu_service.RTX_PRO_6000,
                                          offload_dir=folder / "offload")}


def stop_app(server) -> str:
    """End an app started by `start_app`, and the processes it started (a ZeroGPU app's workers would outlive it and
    hold its output open); its output."""
    import subprocess

    import psutil

    with contextlib.suppress(psutil.NoSuchProcess):
        for child in psutil.Process(server.pid).children(recursive=True):
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()
    server.terminate()
    try:
        output, _ = server.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
        output, _ = server.communicate()
    return output


def start_app(args: list[str], env: dict, timeout_s: float = 240):
    """`python app.py ARGS --port <free port>` in its own process, and a gradio_client connected to it.

    Returns (server, client, url); the test ends the server. Fails the test if the app exits or does not
    answer within `timeout_s`.
    """
    import socket
    import subprocess
    import time

    from gradio_client import Client

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "app.py", *args, "--port", str(port)], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"app.py {' '.join(args)} exited:\n{server.stdout.read()[-4000:]}")
        try:
            return server, Client(url, verbose=False), url
        except Exception:
            time.sleep(1)
    server.kill()
    pytest.fail(f"app.py {' '.join(args)} did not come up within {timeout_s:.0f} s")


def pytest_collection_modifyitems(items):
    """Every browser test is slow too: `-m "not slow"` leaves out Chromium along with the rest."""
    for item in items:
        if item.get_closest_marker("browser"):
            item.add_marker(pytest.mark.slow)
