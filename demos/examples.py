"""The example media shipped with the Space (licences in examples/README.md), listed once for tabs and tests."""

from __future__ import annotations

from pathlib import Path

EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "examples"
IMAGES_DIR = EXAMPLES_DIR / "images"
VIDEOS_DIR = EXAMPLES_DIR / "videos"


def images() -> list[str]:
    return sorted(str(p) for p in IMAGES_DIR.glob("*.jpg"))


def videos() -> list[str]:
    return sorted(str(p) for p in VIDEOS_DIR.glob("*.mp4"))


def image(index: int) -> str:
    """Bundled picture `index`, counting round: any index names one, and neighbouring indexes differ."""
    return images()[index % len(images())]


def video(index: int) -> str:
    """Bundled clip `index`, counting round."""
    return videos()[index % len(videos())]
