"""No network, no wait: loading never sits through huggingface_hub's retries.

Each test runs `checkpoints` in a fresh process whose environment has no HF_HUB_OFFLINE (conftest
sets it for every other test, which hid the 25-46 s waits) and whose Hub endpoint is a closed local
port: no Hub, on any machine, without touching the real one. The assertions read the log.
"""

import os
import re
import socket
import subprocess
import sys

import pytest
from conftest import ROOT

pytestmark = pytest.mark.slow  # each test loads in a Python process of its own

LOAD = """
import logging, sys
logging.basicConfig(level=logging.INFO, format="%(name)s %(levelname)s %(message)s")
import checkpoints
if sys.argv[1] == "offline-demo":
    checkpoints.enable_offline_demo()
for name in sys.argv[2:]:
    try:
        checkpoints.load(name)
    except checkpoints.CheckpointUnavailable as error:
        print("UNAVAILABLE:", error)
"""


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens there once the socket is closed


def _run(tmp_path, mode: str, *names: str) -> str:
    env = {key: value for key, value in os.environ.items() if not key.startswith("HF_")}
    env.update(HF_HUB_CACHE=str(tmp_path / "empty-hf-cache"), HF_ENDPOINT=f"http://127.0.0.1:{_closed_port()}",
               PDR_DTYPE="float32")
    result = subprocess.run([sys.executable, "-c", LOAD, mode, *names], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout + result.stderr


def _no_retries(log: str) -> None:
    assert "Retrying" not in log, log[-3000:]  # huggingface_hub's backoff: "Retrying in 8s [Retry 5/5]"


def test_offline_demo_loads_from_its_cache_without_a_request(tmp_path):
    log = _run(tmp_path, "offline-demo", "vit-mae-base", "vjepa2-vitl", "vjepa2-ssv2-probe")
    _no_retries(log)
    assert "thrown while requesting" not in log, log[-3000:]  # not one request was tried
    seconds = [float(s) for s in re.findall(r"Loaded \S+ \(\S+\) in ([\d.]+) s", log)]
    assert len(seconds) == 3, log[-3000:]
    assert max(seconds) < 20, log[-3000:]  # 46 s each before; about 0.1 s on a 2-core machine


def test_uncached_checkpoint_without_hub_is_reported_after_one_try(tmp_path):
    log = _run(tmp_path, "hub", "vit-mae-base")
    _no_retries(log)
    assert "UNAVAILABLE: The checkpoint facebook/vit-mae-base could not be loaded" in log, log[-3000:]
    assert "python checkpoints.py download vit-mae-base" in log
    assert "did not answer" in log and "one try" in log
    failed_after = re.search(r"Could not load facebook/vit-mae-base after ([\d.]+) s", log)
    assert failed_after, log[-3000:]
    assert float(failed_after.group(1)) < 20  # 25 s of retries before; about 2 s of imports here
