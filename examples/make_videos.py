"""Render the example clips of the tube-masking tab (6.4): moving and occluded objects.

    python examples/make_videos.py            # writes examples/videos/*.mp4

Everything is drawn with numpy and PIL and written as H.264 with `demos.mp4.write_mp4`, so the clips
are ours (licence: CC0, see examples/README.md) and small. Deterministic: same code, same pixels.

- ball_behind_wall.mp4:  a ball rolls across a room and passes behind a wall; it comes out the other side.
- ball_vanishes.mp4:     the same scene, but the ball never comes out (a physically implausible event:
                         compare the surprise curve with the first clip).
- cup_covers_ball.mp4:   a cup comes down over a ball, waits, and lifts again: the ball is still there.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "examples" / "videos"
SIZE = 256
FPS = 24
FRAMES = 72  # 3 s: 16 frames at frame step 4 cover 64 of them


def _room() -> np.ndarray:
    """A back wall with a soft gradient and stripes, and a wooden-looking floor."""
    y, x = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    wall = np.stack([150 + 40 * y / SIZE, 170 + 30 * y / SIZE, 200 - 20 * y / SIZE], -1)
    wall += (((x // 24) % 2) * 10)[..., None]
    floor_top = int(SIZE * 0.68)
    floor = np.stack([140 + 0 * x, 100 + 0 * x, 60 + 0 * x], -1) + (np.sin(x / 5 + y / 3) * 8)[..., None]
    image = np.where((y >= floor_top)[..., None], floor, wall)
    return np.clip(image, 0, 255).astype(np.uint8)


def _ball(draw: ImageDraw.ImageDraw, cx: float, cy: float, r: float, colour=(220, 40, 40)) -> None:
    draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=colour, outline=(90, 10, 10), width=2)
    draw.ellipse([cx - r * 0.5, cy - r * 0.6, cx - r * 0.1, cy - r * 0.25], fill=(255, 200, 200))


def _shadow(draw: ImageDraw.ImageDraw, cx: float, floor_y: float, r: float) -> None:
    draw.ellipse([cx - r, floor_y - r * 0.2, cx + r, floor_y + r * 0.2], fill=(90, 60, 35))


def ball_behind_wall(vanishes: bool = False) -> np.ndarray:
    room = _room()
    frames = []
    r, floor_y = 18, SIZE * 0.68 + 22
    wall_left, wall_right = 104, 152
    for i in range(FRAMES):
        cx = -r + (SIZE + 2 * r) * i / (FRAMES - 1)
        image = Image.fromarray(room)
        draw = ImageDraw.Draw(image)
        if not (vanishes and cx > wall_left):  # the implausible clip: once behind the wall, the ball is gone
            _shadow(draw, cx, floor_y + r - 4, r)
            _ball(draw, cx, floor_y - r + 8 + 3 * abs(np.sin(i / 4)), r)
        # The wall (occluder) is drawn last, in front of the ball.
        draw.rectangle([wall_left, 40, wall_right, SIZE - 10], fill=(70, 75, 85), outline=(30, 30, 35), width=3)
        for b in range(52, SIZE - 20, 22):
            draw.line([wall_left + 4, b, wall_right - 4, b], fill=(95, 100, 110), width=2)
        frames.append(np.asarray(image))
    return np.stack(frames)


def cup_covers_ball() -> np.ndarray:
    room = _room()
    frames = []
    r, table_y = 16, SIZE * 0.68 + 30
    cx = SIZE / 2
    cup_w_top, cup_w_bottom, cup_h = 44, 60, 70
    for i in range(FRAMES):
        # The cup comes down (frames 0-23), stays (24-47), lifts (48-71).
        phase = i / (FRAMES - 1)
        if phase < 1 / 3:
            lift = 1 - phase * 3
        elif phase < 2 / 3:
            lift = 0.0
        else:
            lift = (phase - 2 / 3) * 3
        bottom = table_y + 2 - lift * 130
        image = Image.fromarray(room)
        draw = ImageDraw.Draw(image)
        _shadow(draw, cx, table_y + 2, r)
        _ball(draw, cx, table_y - r + 2, r, colour=(40, 120, 220))
        top = bottom - cup_h
        draw.polygon([(cx - cup_w_top, top), (cx + cup_w_top, top), (cx + cup_w_bottom / 2 + 8, bottom),
                      (cx - cup_w_bottom / 2 - 8, bottom)], fill=(235, 235, 225), outline=(120, 120, 110))
        draw.rectangle([cx - cup_w_top, top, cx + cup_w_top, top + 6], fill=(200, 60, 60))
        frames.append(np.asarray(image))
    return np.stack(frames)


CLIPS = {
    "ball_behind_wall.mp4": lambda: ball_behind_wall(vanishes=False),
    "ball_vanishes.mp4": lambda: ball_behind_wall(vanishes=True),
    "cup_covers_ball.mp4": cup_covers_ball,
}


def main() -> int:
    sys.path.insert(0, str(ROOT))
    from demos import mp4

    OUT.mkdir(parents=True, exist_ok=True)
    for name, render in CLIPS.items():
        path = mp4.write_mp4(render(), str(OUT / name), FPS)
        print(f"{path}: {Path(path).stat().st_size / 1024:.0f} KB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
