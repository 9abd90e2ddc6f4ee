"""Download only what is loaded: allow patterns per checkpoint, the same files in the README's preload_from_hub."""

import re
from fnmatch import fnmatch
from pathlib import Path

import checkpoints

NEVER = ["tf_model.h5", "flax_model.msgpack", "vjepa2_vitl_256.pth", "model.pth", "rust_model.ot"]


def test_no_pattern_fetches_another_format():
    for ckpt in checkpoints.REGISTRY.values():
        for name in NEVER + (["pytorch_model.bin"] if "model.safetensors" in ckpt.files else []):
            assert not any(fnmatch(name, p) for p in ckpt.allow_patterns), (ckpt.name, name)
        assert any(fnmatch("config.json", p) for p in ckpt.allow_patterns)
    # vit-mae-large and -huge publish their PyTorch weights only as pytorch_model.bin
    assert checkpoints.get("vit-mae-huge").files[-1] == "pytorch_model.bin"
    assert checkpoints.get("vit-mae-base").files[-1] == "model.safetensors"


def test_download_passes_the_patterns(monkeypatch):
    import huggingface_hub

    calls = []
    monkeypatch.setattr(huggingface_hub, "snapshot_download",
                        lambda repo, **kwargs: calls.append((repo, kwargs["allow_patterns"])) or f"/cache/{repo}")
    assert checkpoints.download(["vit-mae-large", "vqa-projector"], out=lambda line: None) == 0
    assert calls == [("facebook/vit-mae-large", checkpoints.get("vit-mae-large").allow_patterns)]


def test_preload_from_hub_lists_the_same_files():
    front = Path(__file__).resolve().parent.parent.joinpath("README.md").read_text().split("---")[1]
    lines = re.findall(r"^  - (\S+) (\S+)$", front.split("preload_from_hub:")[1], re.MULTILINE)
    expected = {c.hub_id: ",".join(c.files) for c in checkpoints.REGISTRY.values() if c.hub_id}
    assert dict(lines) == expected
