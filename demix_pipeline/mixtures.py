"""Speech-plus-background mixtures of real recordings found in a media folder laid out like ../shared/media.

The separation bench and its test build the same mixtures from whatever the folder holds, so they
run on another collection of the same layout:
- speech: every wav under `diarization/` with its RTTM (the reference says where speech is), every
  file whose labelled shots (`labels.tsv`) have speech and neither music nor effects, and every
  recording in `audio_only/` that silero VAD finds mostly speech (no labels there);
- music: each `stems/<track>/` folder's stems other than vocals and the mixture, summed (the
  instrumental of a real multitrack), and labelled shots with music and neither speech nor effects
  (files under `stems/` are left to their stems);
- effects: labelled shots with effects and neither speech nor music.
Each speech recording gives the window of `seconds` in which it speaks most (RTTM speech, else
silero VAD speech at its published 0.5 threshold); each background gives the start of its span.
Labels made without listening can be wrong (a "speech only" shot may be rap over a beat), so the
bench checks each speech window with the audio event tagger and leaves out those that hold more.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from demix_pipeline.evaluation import diarization_files, label_rows, read_rttm
from demix_pipeline.media.audio import AudioDecodeError, ClipAudio

STEP_S = 0.1  # grid of candidate window starts
AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".m4a", ".ogg")


@dataclass(frozen=True)
class Recording:
    name: str  # media-relative path, with @start_s of the window
    kind: str  # speech | music | effects
    audio: np.ndarray  # mono float32 at the requested rate, exactly `seconds` long (zero-padded)


@dataclass(frozen=True)
class Mixture:
    name: str
    kind: str  # the background's kind: music | effects
    snr_db: float  # speech-to-background level
    mixture: np.ndarray
    speech: np.ndarray  # the references, scaled like the mixture
    background: np.ndarray


def _window(audio: np.ndarray, rate: int, start_s: float, seconds: float) -> np.ndarray:
    n = int(round(seconds * rate))
    segment = audio[int(round(start_s * rate)):][:n]
    return np.pad(segment, (0, n - len(segment))).astype(np.float32)


def most_speech_start(speech: np.ndarray, step_s: float, span: tuple[float, float], seconds: float) -> float:
    """Start (s) of the window of `seconds` inside `span` that holds most speech; `speech` is a
    boolean per `step_s` frame."""
    first, last = span[0], max(span[0], span[1] - seconds)
    starts = np.arange(first, last + 1e-9, STEP_S)
    cumulative = np.concatenate([[0], np.cumsum(speech)])
    frames = int(round(seconds / step_s))
    index = np.clip(np.round(starts / step_s).astype(int), 0, len(speech))
    amount = cumulative[np.minimum(index + frames, len(speech))] - cumulative[index]
    return float(starts[int(np.argmax(amount))])


def _vad_speech(audio16k: np.ndarray) -> tuple[np.ndarray, float]:
    from demix_pipeline.backends.vad.silero_onnx import RATE, WINDOW, SileroVAD

    return SileroVAD().probabilities(audio16k) >= 0.5, WINDOW / RATE


def _rttm_speech(rttm: Path, uri: str, duration_s: float, step_s: float = 0.01) -> np.ndarray:
    speech = np.zeros(int(np.ceil(duration_s / step_s)), bool)
    for start, end, _ in read_rttm(rttm, uri):
        speech[int(start / step_s):int(np.ceil(end / step_s))] = True
    return speech


def _labelled_spans(media: Path, want) -> dict[str, list[tuple[float, float]]]:
    """video path -> merged spans of its labelled shots for which want(row) holds."""
    spans: dict[str, list[list[float]]] = {}
    for row in label_rows(media):
        if not want(row):
            continue
        start, end = float(row["start_s"]), float(row["end_s"])
        merged = spans.setdefault(row["video_path"], [])
        if merged and abs(merged[-1][1] - start) < 1e-3:
            merged[-1][1] = end
        else:
            merged.append([start, end])
    return {video: [(a, b) for a, b in merged] for video, merged in spans.items()}


def _load(path: Path) -> ClipAudio | None:
    try:
        audio = ClipAudio.load(path)
    except AudioDecodeError:
        return None
    return audio if audio.duration_s > 0 else None


def speech_recordings(media: Path, rate: int, seconds: float, tagger=None,
                      rejected: list[str] | None = None) -> list[Recording]:
    """Speech windows; with an audio event `tagger`, windows in which it hears music, singing or other
    sounds (PresenceRule: 0.9 s, two YAMNet frames) are left out, since their reference is not speech
    alone (their names go to `rejected`)."""
    media = Path(media)
    out = []
    for uri, (wav, rttm) in sorted(diarization_files(media).items()):
        audio = ClipAudio.load(wav)
        start = most_speech_start(_rttm_speech(rttm, uri, audio.duration_s), 0.01, (0, audio.duration_s), seconds)
        out.append(Recording(f"{wav.relative_to(media).as_posix()}@{start:.1f}", "speech",
                             _window(audio.at(rate), rate, start, seconds)))
    clean = _labelled_spans(media, lambda r: r["speech"] == "yes" and r["music"] == "no" and r["effects"] == "no")
    candidates = [(video, spans) for video, spans in sorted(clean.items())]
    candidates += [(path.relative_to(media).as_posix(), None) for path in sorted((media / "audio_only").glob("*"))
                   if path.suffix.lower() in AUDIO_EXTENSIONS]
    for video, spans in candidates:
        audio = _load(media / video)
        if audio is None:
            continue
        speech, step = _vad_speech(audio.at(16000))
        if spans is None:  # unlabelled audio_only file: speech only when VAD says mostly speech
            if speech.mean() < 0.5:
                continue
            spans = [(0.0, audio.duration_s)]
        best = max(((most_speech_start(speech, step, span, seconds), span) for span in spans),
                   key=lambda found: speech[int(found[0] / step):int((found[0] + seconds) / step)].sum())
        start = best[0]
        out.append(Recording(f"{video}@{start:.1f}", "speech", _window(audio.at(rate), rate, start, seconds)))
    if tagger is None:
        return out
    return [r for r in out if _speech_alone(r, rate, tagger) or (rejected is not None and rejected.append(r.name))]


def _speech_alone(recording: Recording, rate: int, tagger) -> bool:
    import soxr

    from demix_pipeline.backends.audio_events.base import PresenceRule, summarise

    frames = tagger.frames(soxr.resample(recording.audio, rate, 16000).astype(np.float32))
    rule = PresenceRule(min_seconds=0.9)
    seconds = summarise(frames, {}).seconds
    return all(seconds.get(kind, 0.0) < rule.min_seconds for kind in ("music", "singing", "other"))


def background_recordings(media: Path, rate: int, seconds: float) -> list[Recording]:
    media = Path(media)
    out = []
    for folder in sorted(p for p in (media / "stems").glob("*") if p.is_dir()):
        parts = [p for p in sorted(folder.glob("*.wav"))
                 if not p.stem.lower().endswith(("vocals", "mixture"))]
        if parts:
            audio = sum(_window(ClipAudio.load(p).at(rate), rate, 0.0, seconds) for p in parts)
            out.append(Recording(f"{folder.relative_to(media).as_posix()} (stems without vocals)", "music", audio))
    for kind, want in (
        ("music", lambda r: r["music"] == "yes" and r["speech"] == "no" and r["effects"] == "no"),
        ("effects", lambda r: r["effects"] == "yes" and r["speech"] == "no" and r["music"] == "no"),
    ):
        for video, spans in sorted(_labelled_spans(media, want).items()):
            if kind == "music" and video.startswith("stems/"):
                continue
            audio = _load(media / video)
            if audio is None:
                continue
            start = spans[0][0]
            window = _window(audio.at(rate), rate, start, min(seconds, spans[0][1] - start))
            out.append(Recording(f"{video}@{start:.1f}", kind, np.pad(window, (0, int(round(seconds * rate)) - len(window)))))
    return out


def mixtures(speech: list[Recording], backgrounds: list[Recording], snrs_db=(0.0, 5.0)) -> Iterator[Mixture]:
    """Every speech recording over every background at each speech-to-background level, peak-safe."""
    for s in speech:
        for b in backgrounds:
            for snr in snrs_db:
                gain = np.sqrt(np.mean(s.audio ** 2) / (np.mean(b.audio ** 2) + 1e-12)) * 10 ** (-snr / 20)
                background = (b.audio * gain).astype(np.float32)
                mix = s.audio + background
                peak = max(1.0, float(np.abs(mix).max()) / 0.99)
                yield Mixture(f"{s.name} + {b.name} @ {snr:+.0f} dB", b.kind, snr, (mix / peak).astype(np.float32),
                              (s.audio / peak).astype(np.float32), (background / peak).astype(np.float32))


def si_sdr(estimate: np.ndarray, reference: np.ndarray) -> float:
    """Scale-invariant SDR (dB), means removed."""
    reference = reference - reference.mean()
    estimate = estimate - estimate.mean()
    target = np.dot(estimate, reference) / (np.dot(reference, reference) + 1e-12) * reference
    return float(10 * np.log10((np.sum(target ** 2) + 1e-12) / (np.sum((estimate - target) ** 2) + 1e-12)))
