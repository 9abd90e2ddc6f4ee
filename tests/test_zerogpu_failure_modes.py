"""Where a ZeroGPU Space fails while a CPU test passes, checked on the production path: the real `spaces` package, its
CUDA emulation and packing, real workers (tests/zerogpu_probe.py, in a process of its own, against the imitated
service). Each check passes on the app's path as it is, on both GPU models, and fails on a deliberately broken copy of
the part it guards:

- the Space's CPU computes with the CPU copies, never with a resident model (packed away after launch: zeros in a
  request's thread, with no error);
- only CPU tensors that need no grad cross the worker boundary (a CUDA tensor arrives as a handle the Space cannot
  open; one needing grad is refused by the pickler, and the call's worker is lost);
- a reused worker answers with nothing of the visitor it was forked for;
- the duration the service receives is what the app asked times the factor of the GPU model (1.5 on the RTX PRO
  6000, 1.0 on the H200): the app never applies it itself.
"""

import json
import subprocess
import sys

import pytest
from conftest import ROOT, zerogpu_env

from offline.zerogpu_service import H200, RTX_PRO_6000, Rules, ZeroGpuService

pytestmark = pytest.mark.slow  # a process of its own per probe

FACTOR = {RTX_PRO_6000: 1.5, H200: 1.0}  # spaces 0.51.3, spaces/zero/configs.json
PROBE_CHECKS = ("only_cpu_tensors_cross", "cpu_copy_answers_as_the_worker", "worker_sees_no_visitor")
FACTOR_CHECK = "the_service_receives_the_duration_times_the_gpu_models_factor"


def probe(tiny_hub, folder, breakage: str, gpu_model: str = RTX_PRO_6000) -> dict[str, str]:
    """Every check's result ("ok" or what went wrong) on the path with `breakage` ("none": as it is)."""
    # No aborts: the probe's workers compute on this CPU, slower than the GPU its durations are sized for.
    with ZeroGpuService(Rules(abort=False)) as service:
        env = {**zerogpu_env(tiny_hub, service, folder, gpu_model=gpu_model), "PDR_PRELOAD": "vit-mae-base"}
        done = subprocess.run([sys.executable, str(ROOT / "tests" / "zerogpu_probe.py"), breakage], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=300)
        received = [call["seconds"] for call in service.records()]
    lines = [line for line in done.stdout.splitlines() if line.startswith('{"checks"')]
    assert done.returncode == 0 and lines, f"the probe failed:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    report = json.loads(lines[-1])
    expected = [round(asked * FACTOR[gpu_model]) for asked in report["asked"]]
    report["checks"][FACTOR_CHECK] = "ok" if received == expected else f"received {received}, expected {expected}"
    return report["checks"]


@pytest.mark.parametrize("gpu_model", [RTX_PRO_6000, H200])
def test_the_production_path_passes_every_check(tiny_hub, tmp_path, gpu_model):
    checks = probe(tiny_hub, tmp_path, "none", gpu_model)
    assert set(checks) == {*PROBE_CHECKS, FACTOR_CHECK} and all(v == "ok" for v in checks.values()), checks


BROKEN = {  # a deliberately broken copy of the path -> the check that must catch it, and what it must say
    "resident_on_cpu": ("cpu_copy_answers_as_the_worker", "ResidentModelError"),
    "cuda_result": ("only_cpu_tensors_cross", "CrossingError: what embed_patches returned is a tensor on cuda"),
    "grad_argument": ("only_cpu_tensors_cross", "CrossingError: an argument of embed_patches"),
    "context_in_worker": ("worker_sees_no_visitor", "'signed_in': True"),
    "wrong_factor": (FACTOR_CHECK, "received"),
}


@pytest.mark.parametrize("breakage", BROKEN)
def test_each_check_fails_on_a_deliberately_broken_copy_of_the_path(tiny_hub, tmp_path, breakage):
    check, says = BROKEN[breakage]
    checks = probe(tiny_hub, tmp_path, breakage)
    assert checks[check] != "ok" and says in checks[check], checks
