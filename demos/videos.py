"""Reading videos safely: probing a file and sampling the frames a model sees.

Every uploaded, webcam or example clip passes through here. Frames come back as (T, H, W, 3) uint8 RGB arrays,
and anything a learner can fix (wrong file, absurd value, a clip too long or too large) raises `UserError` with
a sentence that says so.

Videos are decoded with PyAV, never with an ffmpeg binary (a Space may not have one). We seek to the frames
asked for instead of decoding whole files, never trust container frame counts (WebM reports 0), and apply the
display rotation so phone videos stand upright.
"""

from __future__ import annotations

import bisect
import contextlib
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from demos import uploads
from demos.errors import UserError, brief, number, whole_number

MAX_FRAME_SIDE = 512  # decoded video frames are downscaled so their SHORT side is at most this (4K stays cheap)
MAX_FRAMES = 64  # most frames one request may sample
MAX_FRAME_STEP = 64  # largest "every k-th frame" step
MAX_SAMPLE_FPS = 60.0  # highest sampling rate in frames per second
MAX_VIDEO_SECONDS = 3600  # longer containers are refused (a 10-minute 4K clip works by seeking)
MAX_VIDEO_SIDE = 8192  # wider or taller video streams (beyond 8K) are refused
MAX_DECODED_FRAMES = 20_000  # decoding budget per request: guards against files that cannot be seeked
RESEEK_GAP_S = 2.0  # without a keyframe index, seek again when the next frame wanted is this far ahead

_VIDEO_HINT = "Try an MP4, WebM, MOV or MKV video."


@dataclass(frozen=True)
class VideoInfo:
    """What a video file holds, as displayed (after rotation)."""

    path: str
    duration_s: float  # from the stream, the container, its tags, or by demuxing packets
    fps: float  # average frame rate
    width: int  # display width, after rotation
    height: int  # display height, after rotation
    rotation: int  # degrees counter-clockwise the stored frames are turned for display (0/90/180/270)
    num_frames_estimate: int  # duration * fps; container frame counts are never trusted


@dataclass(frozen=True)
class FrameSample:
    """Frames sampled from a video, what they are, and what had to be adjusted."""

    frames: np.ndarray  # (T, H, W, 3) uint8 RGB, upright, short side <= MAX_FRAME_SIDE
    timestamps_s: list[float]  # presentation time of each returned frame, from the stream's start
    notes: list[str]  # sentences for anything adjusted (start moved, frames repeated, file damaged)
    decoded_frames: int = field(default=0, compare=False)  # frames decoded to get these: the cost


# Demuxers that open a single still picture; a PNG renamed .mp4 would otherwise "play" as 1 frame.
_STILL_IMAGE_FORMATS = ("image2", "_pipe", "apng", "webp")


def probe_video(path) -> VideoInfo:
    """Check a video file and describe it (duration, frame rate, display size, rotation)."""
    av = _av()
    path = _video_path(path)
    with _open_video(path) as container:
        try:
            info, _ = _probe_open(av, container, path)
        except av.FFmpegError as error:
            raise _damaged(error) from None
    return info


def sample_frames(path, *, start_s: float = 0.0, num_frames: int = 16, frame_step: int | None = 4,
                  fps: float | None = None) -> FrameSample:
    """Decode `num_frames` frames from `start_s`: every `frame_step`-th native frame, or `fps` per second.

    Give `fps` to sample by time (then `frame_step` is ignored); otherwise `frame_step` is used (as
    the V-JEPA 2 probes were evaluated: SSv2 16 frames step 4, Diving48 32 frames step 2). Only the
    frames needed are decoded: we seek near the first one and decode forward, seeking again across
    long gaps. Always returns exactly `num_frames` frames; `notes` says what was adjusted.
    """
    num_frames, frame_step, fps, start_s = _validate_sampling(num_frames, frame_step, fps, start_s)
    av = _av()
    path = _video_path(path)
    with _open_video(path) as container:
        try:
            info, stream = _probe_open(av, container, path)
            step_s = 1.0 / fps if fps is not None else frame_step / info.fps
            targets, notes = _plan_targets(info, start_s, num_frames, step_s)
            picked, decoded, damage = _decode_targets(av, container, stream, info, targets)
        except av.FFmpegError as error:
            raise _damaged(error) from None
    return _assemble(picked, targets, decoded, damage, notes, frame_step, fps)


# --- opening and probing -----------------------------------------------------------------------
def _av():
    import av  # imported on first use: starting the app and the image demos should not pay for it

    return av


def _video_path(path) -> Path:
    if path is None or (isinstance(path, str) and path == ""):
        raise UserError("No video given: upload a clip, record one with the webcam, or pick an example.")
    if not isinstance(path, (str, os.PathLike)):
        raise UserError(f"A video file path was expected, but got a {type(path).__name__}.")
    path = Path(path)
    uploads.check_file(path, "video", _VIDEO_HINT)
    return path


@contextlib.contextmanager
def _open_video(path: Path):
    """Open a file with PyAV for reading, turning "cannot open" into a sentence."""
    av = _av()
    try:
        container = av.open(str(path), mode="r", metadata_errors="ignore")
    except (av.FFmpegError, UnicodeDecodeError, ValueError):
        raise UserError(f"This file is not a video that can be read, or it is damaged. {_VIDEO_HINT}") from None
    try:
        yield container
    finally:
        container.close()


def _damaged(error: Exception) -> UserError:
    return UserError(f"This video is damaged or uses a format that cannot be decoded ({brief(error)}). "
                     f"{_VIDEO_HINT}")


def _probe_open(av, container, path: Path):
    """VideoInfo for an open container, and its video stream (set up for threaded decoding)."""
    format_name = container.format.name or ""
    if any(token in format_name for token in _STILL_IMAGE_FORMATS):
        raise UserError(f"This file is a still image, not a video. Use the image demos for pictures, "
                        f"or upload a video: {_VIDEO_HINT}")
    if not container.streams.video:
        if container.streams.audio:
            raise UserError(f"This file has sound but no picture. {_VIDEO_HINT}")
        raise UserError(f"This file holds no video stream. {_VIDEO_HINT}")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"  # frame + slice threads: large frames decode on every core
    _check_video_size(stream.codec_context.width, stream.codec_context.height)  # before decoding anything
    first = _first_frame(av, container, stream)  # the display rotation arrives with the frames
    if first is None:
        raise UserError(f"No frame of this video could be decoded; the file may be damaged. {_VIDEO_HINT}")
    rotation = _rotation(first, stream)
    stored_w, stored_h = first.width, first.height
    _check_video_size(stored_w, stored_h)
    fps = _frame_rate(container, stream)
    duration = _duration(container, stream, fps)
    if duration > MAX_VIDEO_SECONDS:
        raise UserError(f"This video is {_clock(duration)} long; the limit is {_clock(MAX_VIDEO_SECONDS)}. "
                        f"Please trim it or pick a shorter clip.")
    width, height = (stored_h, stored_w) if rotation in (90, 270) else (stored_w, stored_h)
    info = VideoInfo(path=str(path), duration_s=duration, fps=fps, width=width, height=height,
                     rotation=rotation, num_frames_estimate=max(1, int(round(duration * fps))))
    return info, stream


def _check_video_size(width: int, height: int) -> None:
    if max(width or 0, height or 0) > MAX_VIDEO_SIDE:
        raise UserError(f"This video is {width}x{height} pixels; the limit is {MAX_VIDEO_SIDE} pixels a side. "
                        f"Please use a smaller video.")


def _first_frame(av, container, stream):
    """The first decodable frame (for size and rotation), or None if nothing decodes."""
    try:
        for frame in container.decode(stream):
            return frame
    except av.FFmpegError:
        return None
    return None


def _rotation(frame, stream) -> int:
    """Counter-clockwise display rotation (0, 90, 180, 270) from the display matrix.

    FFmpeg attaches the container's display matrix to every decoded frame (`frame.rotation`,
    counter-clockwise). Files remuxed by old tools may only carry a 'rotate' tag, which counts
    clockwise.
    """
    degrees = frame.rotation or 0
    if not degrees:
        try:
            tags = {key.lower(): value for key, value in stream.metadata.items()}  # Matroska: ROTATE
            degrees = -int(float(tags.get("rotate", 0)))
        except (TypeError, ValueError):
            degrees = 0
    return int(round(degrees / 90.0)) * 90 % 360


def _stream_start_s(stream) -> float:
    if stream.start_time is not None and stream.time_base:
        return float(stream.start_time * stream.time_base)
    return 0.0


def _frame_rate(container, stream) -> float:
    """Average frame rate; webcam WebM may report nonsense, then measure it from packet times."""
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate and 0.5 <= float(rate) <= 240.0:
            return float(rate)
    measured = _measure_rate(container, stream)
    return measured if measured else 25.0  # the last resort: a common video rate


def _measure_rate(container, stream, max_packets: int = 120) -> float | None:
    times = []
    for packet in container.demux(stream):
        if packet.pts is not None:
            times.append(float(packet.pts * stream.time_base))
        if len(times) >= max_packets:
            break
    container.seek(0)
    times = np.unique(times)
    if len(times) < 2:
        return None
    rate = 1.0 / float(np.median(np.diff(times)))
    return rate if 0.5 <= rate <= 240.0 else None


def _duration(container, stream, fps: float) -> float:
    """Seconds of video: stream header, container header, Matroska tag, else demux the packets."""
    if stream.duration and stream.time_base and stream.duration > 0:
        return float(stream.duration * stream.time_base)
    if container.duration and container.duration > 0:
        return container.duration / 1_000_000  # AV_TIME_BASE
    tagged = _tag_seconds(stream.metadata.get("DURATION") or container.metadata.get("DURATION"))
    if tagged:
        return tagged
    return _demuxed_duration(container, stream, fps)


def _tag_seconds(text) -> float | None:
    """Parse a Matroska DURATION tag such as '00:01:02.500000000'."""
    try:
        hours, minutes, seconds = str(text).split(":")
        value = int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    except (ValueError, AttributeError):
        return None
    return value if value > 0 else None


def _demuxed_duration(container, stream, fps: float) -> float:
    """Read packet headers (no decoding) to find when the last frame ends; seek back afterwards."""
    start = _stream_start_s(stream)
    end = None
    for packet in container.demux(stream):
        if packet.pts is None:
            continue
        packet_end = float((packet.pts + (packet.duration or 0)) * stream.time_base)
        if not packet.duration:
            packet_end += 1.0 / fps
        end = packet_end if end is None else max(end, packet_end)
    container.seek(0)
    if end is None:
        raise UserError(f"The length of this video could not be read; the file may be damaged. {_VIDEO_HINT}")
    return max(end - start, 1.0 / fps)


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


# --- sampling ----------------------------------------------------------------------------------
def _validate_sampling(num_frames, frame_step, fps, start_s):
    """Check the request; returns (num_frames, frame_step, fps, start_s) as int, int|None, float|None, float."""
    num_frames = whole_number("The number of frames", num_frames, minimum=1, maximum=MAX_FRAMES)
    if fps is not None:
        fps = number("The sampling rate (frames per second)", fps)
        if not 0.0 < fps <= MAX_SAMPLE_FPS:
            raise UserError(f"The sampling rate must be above 0 and at most {MAX_SAMPLE_FPS:g} frames per "
                            f"second; got {fps:g}.")
        frame_step = None
    elif frame_step is None:
        raise UserError("Choose how to sample the video: a frame step or a number of frames per second.")
    else:
        frame_step = whole_number("The frame step", frame_step, minimum=1, maximum=MAX_FRAME_STEP)
    start_s = number("The start time", 0.0 if start_s is None else start_s)
    if start_s < 0:
        raise UserError(f"The start time must be 0 s or later; got {start_s:g} s.")
    return num_frames, frame_step, fps, start_s


def _plan_targets(info: VideoInfo, start_s: float, count: int, step_s: float):
    """Wanted times (seconds from the stream start), moving the start back when the clip is short."""
    notes = []
    last_frame_s = max(0.0, info.duration_s - 1.0 / info.fps)  # when the last frame is shown
    span = (count - 1) * step_s
    start = start_s
    if start + span > last_frame_s + 1e-6 and start > 0:
        start = max(0.0, last_frame_s - span)
        if abs(start - start_s) > 1e-6:
            notes.append(f"Start moved from {start_s:.2f} s to {start:.2f} s: the clip is only "
                         f"{info.duration_s:.1f} s long and {count} frames {step_s:.2f} s apart need {span:.1f} s.")
    return [start + index * step_s for index in range(count)], notes


def _keyframe_times(stream) -> list[float] | None:
    """Keyframe times from the container's index (MP4 has one per sample); None if it has too few."""
    try:
        entries = stream.index_entries
        times = [float(entry.timestamp * stream.time_base) for entry in entries if entry.is_keyframe]
    except Exception:  # an index is an optimisation, never a requirement
        return None
    return sorted(times) if len(times) >= 2 else None


def _seek(container, stream, seconds: float) -> None:
    """Seek to the keyframe at or before `seconds` (stream time from its start)."""
    offset = int(math.floor((max(seconds, 0.0) + _stream_start_s(stream)) / stream.time_base))
    container.seek(offset, backward=True, any_frame=False, stream=stream)


def _decode_targets(av, container, stream, info: VideoInfo, targets: list[float]):
    """Decode forward from near the first target, picking the first frame at or after each one.

    Returns (picked, decoded, damage): picked[i] is (time, HxWx3 array) or None when the video
    ended first; `decoded` counts decoded frames; `damage` is the decoder's error message, if any.
    """
    tolerance = 0.25 / info.fps  # timestamps are rounded to the time base
    keyframes = _keyframe_times(stream)
    start = _stream_start_s(stream)
    picked: list = [None] * len(targets)
    decoded, index, damage = 0, 0, None
    previous_t = None
    seek_for = 0
    _seek(container, stream, targets[0])
    while index < len(targets):
        reseek = None
        try:
            for frame in container.decode(stream):
                decoded += 1
                if decoded > MAX_DECODED_FRAMES:
                    raise UserError("Reading this video needed too much decoding (it may not support seeking). "
                                    "Please trim it or re-encode it as MP4.")
                if frame.pts is not None:
                    t = float(frame.pts * stream.time_base) - start
                else:  # no timestamp: assume the nominal frame rate
                    t = 0.0 if previous_t is None else previous_t + 1.0 / info.fps
                previous_t = t
                converted = None
                while index < len(targets) and t >= targets[index] - tolerance:
                    if converted is None:
                        converted = _frame_to_rgb(frame, info.rotation)
                    picked[index] = (t, converted)
                    index += 1
                if index >= len(targets):
                    break
                if index != seek_for and _worth_seeking(t, targets[index], keyframes):
                    reseek = seek_for = index
                    break
        except av.FFmpegError as error:  # damaged data: keep what decoded so far
            damage = brief(error)
        if reseek is None:
            break  # finished, ended or damaged
        _seek(container, stream, targets[reseek])
    if damage is None and index < len(targets) and _ends_early(previous_t, info):
        # A cut-off upload decodes without errors but stops long before its header says.
        end = "before any frame" if previous_t is None else f"at {previous_t:.2f} s"
        damage = f"the pictures stop {end} although the file says it lasts {info.duration_s:.2f} s"
    return picked, decoded, damage


def _ends_early(last_s: float | None, info: VideoInfo) -> bool:
    slack = max(3.0 / info.fps, 0.25)  # rounding, edit lists and a last frame's duration
    return last_s is None or last_s < info.duration_s - slack


def _worth_seeking(now_s: float, target_s: float, keyframes: list[float] | None) -> bool:
    """Seek again only when a keyframe lies between here and the next target (else decode on)."""
    if keyframes is None:
        return target_s - now_s > RESEEK_GAP_S
    before_target = bisect.bisect_right(keyframes, target_s) - 1
    return before_target >= 0 and keyframes[before_target] > now_s + 1e-6


def _frame_to_rgb(frame, rotation: int) -> np.ndarray:
    """One decoded frame as upright uint8 RGB, its short side at most MAX_FRAME_SIDE."""
    width, height = frame.width, frame.height
    short = min(width, height)
    if short > MAX_FRAME_SIDE:
        scale = MAX_FRAME_SIDE / short
        width, height = max(1, round(width * scale)), max(1, round(height * scale))
    # reformat converts and scales in one libswscale pass (much faster than numpy on 4K frames).
    rgb = frame.reformat(width=width, height=height, format="rgb24").to_ndarray()
    if rotation:
        rgb = np.rot90(rgb, k=rotation // 90)  # display rotation is counter-clockwise
    return np.ascontiguousarray(rgb)


def _assemble(picked, targets, decoded, damage, notes, frame_step, fps) -> FrameSample:
    """Pad missing frames by repeating the last decoded one and explain every adjustment."""
    got = [item for item in picked if item is not None]
    if not got:
        reason = f" ({damage})" if damage else ""
        raise UserError(f"No frame could be decoded at the times asked for{reason}; the file may be damaged or "
                        f"shorter than it claims. {_VIDEO_HINT}")
    wanted = len(targets)
    if damage and len(got) < (wanted + 1) // 2:
        raise UserError(f"This video is damaged: only {len(got)} of the {wanted} frames asked for could be read "
                        f"({damage}). {_VIDEO_HINT}")
    missing = wanted - len(got)
    if missing:
        how = f"at step {frame_step}" if fps is None else f"at {fps:g} frames per second"
        cause = f"the file is damaged: {damage}" if damage else "the video ends"
        available = f"Only {len(got)} frame{'s' if len(got) > 1 else ''} available"
        notes = [*notes, f"{available} {how} ({cause}); the last frame is repeated to make {wanted}."]
        picked = [item if item is not None else got[-1] for item in picked]
    frames = np.stack([item[1] for item in picked])
    return FrameSample(frames=np.ascontiguousarray(frames), timestamps_s=[round(item[0], 6) for item in picked],
                       notes=list(notes), decoded_frames=decoded)

