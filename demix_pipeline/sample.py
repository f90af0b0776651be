"""`demix sample`: a small demo corpus made here, with no network.

Video is generated (procedural scenes with camera pans, zooms, a moving object, a flash, a fade
and a dissolve) and cut at known frames; speech is a real recording that ships inside the
pyannote.audio wheel (its `sample.wav`, two speakers); music (chords with harmonics) and effects
(impacts, noise bursts, a whoosh) are synthesised. `truth.json` lists every hard cut and
transition, so the demo's shot splitting can be checked.
"""
from __future__ import annotations

import csv
import json
import wave
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import av
import numpy as np

FPS = 25
SIZE = (640, 360)
RATE = 48000


@dataclass
class Scene:
    seconds: float
    seed: int
    motion: str  # pan | zoom | object | static
    flash_at: float | None = None  # seconds into the scene: a 2-frame flash (not a cut)


def speech_recording() -> tuple[np.ndarray, int]:
    """pyannote.audio's sample.wav (30 s, 16 kHz, two speakers), as float32 mono."""
    try:
        path = metadata.distribution("pyannote.audio").locate_file("pyannote/audio/sample/sample.wav")
    except metadata.PackageNotFoundError:
        raise RuntimeError("the demo corpus needs the speech recording inside pyannote.audio: "
                           "`pip install --no-deps pyannote.audio==4.0.7` (make install does)") from None
    with wave.open(str(path), "rb") as handle:
        rate, frames = handle.getframerate(), handle.readframes(handle.getnframes())
    return np.frombuffer(frames, np.int16).astype(np.float32) / 32768.0, rate


def _resample(signal: np.ndarray, rate: int, target: int) -> np.ndarray:
    t_out = np.arange(int(len(signal) * target / rate)) / target
    return np.interp(t_out, np.arange(len(signal)) / rate, signal).astype(np.float32)


def _canvas(seed: int, height: int, width: int) -> np.ndarray:
    """A procedural 'landscape': smooth colour field, sky gradient, hills and shapes."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = rng.uniform(40, 215, size=3)
    tilt = rng.uniform(-60, 60, size=3)
    img = base + tilt * (y / height - 0.5)[..., None]
    for _ in range(3):  # low-frequency colour waves
        fx, fy = rng.uniform(1, 4, 2) * 2 * np.pi
        amp = rng.uniform(10, 35, 3)
        img += amp * np.sin(fx * x / width + fy * y / height + rng.uniform(0, 6))[..., None]
    horizon = height * rng.uniform(0.45, 0.7) + height * 0.08 * np.sin(x / width * rng.uniform(3, 9))
    img = np.where((y > horizon)[..., None], img * 0.6 + rng.uniform(20, 90, 3), img)
    for _ in range(14):  # shapes give texture to follow under motion
        cx, cy, r = rng.uniform(0, width), rng.uniform(0, height), rng.uniform(8, height / 7)
        mask = (x - cx) ** 2 + (y - cy) ** 2 < r * r
        img[mask] = rng.uniform(0, 255, 3)
    noise = rng.normal(0, 4, img.shape)
    return np.clip(img + noise, 0, 255).astype(np.uint8)


def _scene_frames(scene: Scene) -> list[np.ndarray]:
    width, height = SIZE
    canvas = _canvas(scene.seed, int(height * 1.5), int(width * 1.5))
    count = int(round(scene.seconds * FPS))
    rng = np.random.default_rng(scene.seed + 1)
    frames = []
    for i in range(count):
        p = i / max(1, count - 1)
        if scene.motion == "pan":
            x0, y0, scale = int(p * (canvas.shape[1] - width)), int(canvas.shape[0] * 0.15), 1.0
        elif scene.motion == "zoom":
            scale = 1.0 + 0.35 * p
            x0, y0 = int((canvas.shape[1] - width * 1.35) / 2), int((canvas.shape[0] - height * 1.35) / 2)
        else:
            x0, y0, scale = int(canvas.shape[1] * 0.1), int(canvas.shape[0] * 0.1), 1.0
        crop_w, crop_h = int(width * 1.35 / scale) if scene.motion == "zoom" else width, int(height * 1.35 / scale) if scene.motion == "zoom" else height
        crop = canvas[y0:y0 + crop_h, x0:x0 + crop_w]
        if crop.shape[:2] != (height, width):
            yi = (np.arange(height) * crop.shape[0] / height).astype(int)
            xi = (np.arange(width) * crop.shape[1] / width).astype(int)
            crop = crop[yi][:, xi]
        frame = crop.copy()
        if scene.motion in ("object", "static"):
            cx = int(width * (0.15 + 0.7 * p))
            cy = int(height * 0.6 + 20 * np.sin(p * 12))
            frame[max(0, cy - 30):cy + 30, max(0, cx - 30):cx + 30] = (230, 60, 40)
        if scene.flash_at is not None and abs(i / FPS - scene.flash_at) < 1.5 / FPS:
            frame = np.clip(frame.astype(np.int16) + 140, 0, 255).astype(np.uint8)
        frame = np.clip(frame.astype(np.int16) + rng.integers(-2, 3, frame.shape), 0, 255).astype(np.uint8)
        frames.append(frame)
    return frames


def _music(seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    out = np.zeros_like(t)
    roots = 110 * 2 ** (rng.choice([0, 3, 5, 7, 8, 10], size=8) / 12)
    beat = 0.5
    for k, root in enumerate(roots):
        seg = (t >= k * seconds / len(roots)) & (t < (k + 1) * seconds / len(roots))
        for ratio in (1, 1.26, 1.5, 2):
            for h in range(1, 5):
                out[seg] += 0.05 / h * np.sin(2 * np.pi * root * ratio * h * t[seg])
    out *= 0.7 + 0.3 * (np.mod(t, beat) < 0.1)  # a pulse
    return out.astype(np.float32)


def _effects(seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    out = np.zeros(n, np.float32)
    for start in rng.uniform(0.2, seconds - 0.6, size=int(seconds * 1.2)):
        i = int(start * RATE)
        length = int(rng.uniform(0.05, 0.4) * RATE)
        env = np.exp(-np.arange(length) / (length / 5))
        burst = rng.normal(0, 0.5, length) * env
        if rng.random() < 0.4:  # a pitched impact
            burst += 0.6 * np.sin(2 * np.pi * rng.uniform(60, 200) * np.arange(length) / RATE) * env
        out[i:i + length] += burst[: n - i].astype(np.float32)
    return out


def _write(path: Path, frames: list[np.ndarray], audio: np.ndarray) -> None:
    stereo = np.stack([audio, audio * 0.9]).astype(np.float32)
    stereo /= max(1.0, float(np.abs(stereo).max()) / 0.9)
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=FPS, options={"crf": "20", "preset": "veryfast", "g": "50"})
        video.width, video.height, video.pix_fmt = SIZE[0], SIZE[1], "yuv420p"
        sound = container.add_stream("aac", rate=RATE, layout="stereo")
        for frame in frames:
            for packet in video.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        step = 1024
        for i in range(0, stereo.shape[1], step):
            chunk = np.ascontiguousarray(stereo[:, i:i + step])
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
            frame.sample_rate, frame.pts = RATE, i
            for packet in sound.encode(frame):
                container.mux(packet)
        for packet in sound.encode():
            container.mux(packet)


def _dissolve(a: list[np.ndarray], b: list[np.ndarray], frames: int) -> list[np.ndarray]:
    mix = []
    for i in range(frames):
        alpha = (i + 1) / (frames + 1)
        mix.append((a[len(a) - frames + i] * (1 - alpha) + b[i] * alpha).astype(np.uint8))
    return a[:-frames] + mix + b[frames:]


def make_sample_corpus(out: Path, seed: int = 7) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    speech, speech_rate = speech_recording()
    speech = _resample(speech[int(6.7 * speech_rate):], speech_rate, RATE)  # speech starts at 6.7 s
    truth: dict[str, dict] = {}
    listing = []

    # 1. cinematic: four shots (pan, zoom with a flash, moving object, static), hard cuts, fade out
    scenes = [Scene(4.0, seed, "pan"), Scene(4.0, seed + 10, "zoom", flash_at=2.0),
              Scene(4.0, seed + 20, "object"), Scene(4.0, seed + 30, "static")]
    frames = [f for s in scenes for f in _scene_frames(s)]
    fade = int(1.0 * FPS)
    for i in range(fade):
        frames[-fade + i] = (frames[-fade + i] * (1 - (i + 1) / fade)).astype(np.uint8)
    seconds = len(frames) / FPS
    audio = 0.25 * _music(seconds, seed) + np.concatenate([0.9 * speech[: int(8 * RATE)], np.zeros(int((seconds - 8) * RATE), np.float32)])
    audio[int(8 * RATE):] += 0.6 * _effects(seconds - 8, seed)[: len(audio) - int(8 * RATE)]
    _write(out / "cinematic_shots.mp4", frames, audio)
    truth["cinematic_shots.mp4"] = {"cuts_s": [4.0, 8.0, 12.0], "flashes_s": [6.0], "transitions": [[15.0, 16.0, "fade_out"]]}
    listing.append(("cinematic_shots.mp4", "cinematic"))

    # 2. talking head: one long static shot with speech
    frames = _scene_frames(Scene(9.0, seed + 40, "object"))
    _write(out / "talking_head.mp4", frames, 0.9 * speech[int(8 * RATE): int(17 * RATE)])
    truth["talking_head.mp4"] = {"cuts_s": [], "transitions": []}
    listing.append(("talking_head.mp4", "talking_head"))

    # 3. film-related: a dissolve, then a hard cut; music and effects, no speech
    a = _scene_frames(Scene(5.0, seed + 50, "pan"))
    b = _scene_frames(Scene(5.0, seed + 60, "static"))
    c = _scene_frames(Scene(4.0, seed + 70, "zoom"))
    dissolve = 20
    frames = _dissolve(a, b, dissolve) + c
    seconds = len(frames) / FPS
    audio = 0.5 * _music(seconds, seed + 1) + 0.5 * _effects(seconds, seed + 2)
    _write(out / "film_related_mood.mp4", frames, audio)
    start = (len(a) - dissolve) / FPS
    truth["film_related_mood.mp4"] = {"cuts_s": [(len(a) + len(b) - dissolve) / FPS],
                                      "transitions": [[start, start + dissolve / FPS, "dissolve"]]}
    listing.append(("film_related_mood.mp4", "film_related"))

    with open(out / "sources.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "source_kind"])
        writer.writerows(listing)
    (out / "truth.json").write_text(json.dumps(truth, indent=2) + "\n")
    (out / "README.txt").write_text(__doc__.strip() + "\n")
    return out / "sources.csv"
