"""The app's dispatcher on ZeroGPU with the real `spaces` package: tests/zerogpu, run in a process of its own (with
ZeroGPU switched on, `spaces` patches torch and gradio for the whole process), once per GPU model the driver may
report (their duration factors differ)."""

import os
import subprocess
import sys

import pytest
from conftest import ROOT

from offline.zerogpu_service import H200, RTX_PRO_6000, ZeroGpuService, environment


@pytest.mark.slow  # a Space's process of its own, and calls that wait for their time to run out
@pytest.mark.parametrize("gpu_model", [RTX_PRO_6000, H200])
def test_the_dispatcher_under_the_real_spaces_package(gpu_model, tmp_path):
    # `spaces` needs a service's URL at import; each test of the folder then points it at a service of its own.
    with ZeroGpuService() as service:
        env = {**os.environ, **environment(service, gpu_model=gpu_model, offload_dir=tmp_path / "offload"),
               "PDR_CPU_PACE": "1.7"}  # placement as on the Space's CPU whatever this machine's pace (conftest.zerogpu_env)
        done = subprocess.run([sys.executable, "-m", "pytest", "tests/zerogpu", "-q", "-p", "no:cacheprovider"],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"tests/zerogpu on {gpu_model}:\n{done.stdout[-12000:]}\n{done.stderr[-4000:]}"
