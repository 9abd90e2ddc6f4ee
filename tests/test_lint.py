"""The code passes the project's ruff rules (ruff.toml), so style problems fail CI like any bug."""

import shutil
import subprocess
import sys

import pytest
from conftest import ROOT


def test_ruff_finds_nothing():
    ruff = shutil.which("ruff", path=str(ROOT / ".venv" / "bin")) or shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed (it is in requirements-dev.txt)")
    result = subprocess.run([ruff, "check", "--output-format", "concise", "."], cwd=ROOT, capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow  # a Python process importing gradio, torch and transformers
def test_app_imports_without_loading_models():
    """`python app.py` must be up within seconds: building the page loads no weights."""
    code = ("import sys; sys.argv=['x']; import app, checkpoints; app.build_app(); "
            "loaded = [name for name in checkpoints.REGISTRY if checkpoints.is_loaded(name)]; assert not loaded, loaded")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=120)
