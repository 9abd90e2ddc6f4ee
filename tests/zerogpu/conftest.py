"""The tests in this folder run in a ZeroGPU Space's process: the real `spaces` package, switched on before anything
imported it, talking to Hugging Face's side imitated by `offline.zerogpu_service`.

`tests/test_zerogpu_dispatcher.py` runs this folder in a process of its own, with the environment of
`offline.zerogpu_service.environment()` (the driver reporting one GPU model for the whole process); the normal run
leaves the folder out (`tests/conftest.py`): `spaces` patches torch and gradio for the whole process it runs in.

`spaces` reads the service's URL once, at import: each test points the client at a service of its own
(`zerogpu_service`), whose rules the test sets. A test for another GPU model than the default ZeroGPU's is marked
`gpu_model(name)`; a run keeps the tests of the model its driver reports.
"""

import contextlib
import os

import pytest

from offline.zerogpu_service import RTX_PRO_6000, Rules, ZeroGpuService

if os.environ.get("SPACES_ZERO_GPU", "").lower() not in ("1", "t", "true"):
    raise pytest.UsageError("tests/zerogpu runs as a ZeroGPU Space: run it through tests/test_zerogpu_dispatcher.py")

GPU_MODEL = os.environ["ZEROGPU_IMITATED_GPU"]


def pytest_configure(config):
    config.addinivalue_line("markers", "gpu_model(name): runs where the driver reports this GPU model "
                                       f"(unmarked: {RTX_PRO_6000})")


def pytest_collection_modifyitems(config, items):
    def model(item):
        marker = item.get_closest_marker("gpu_model")
        return marker.args[0] if marker else RTX_PRO_6000

    deselected = [item for item in items if model(item) != GPU_MODEL]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if model(item) == GPU_MODEL]


@pytest.fixture
def zerogpu_service(monkeypatch):
    """`zerogpu_service(**rules)`: a ZeroGPU device service with these `Rules`, which the Space's calls go to from now
    on; stopped (its workers with it) after the test. The dispatcher starts the test as a fresh process's does."""
    from spaces.config import Config

    from demos.dispatcher import DISPATCHER

    DISPATCHER.reset()
    with contextlib.ExitStack() as services:
        def start(**rules) -> ZeroGpuService:
            service = services.enter_context(ZeroGpuService(Rules(**rules)))
            monkeypatch.setattr(Config, "zero_device_api_url", service.url)
            return service

        yield start
    DISPATCHER.reset()


@pytest.fixture
def service(zerogpu_service) -> ZeroGpuService:
    """A service with the default rules: no quota limit, 16 GPUs, idle workers kept, overdue calls aborted."""
    return zerogpu_service()
