"""Offline diarization: silero VAD speech, resemblyzer (GE2E) embeddings of sliding windows, clustering.

Speaker count is estimated by cutting an average-linkage tree of cosine distances at a threshold
and folding clusters with less than `min_speaker_s` of speech into their nearest neighbour.
VAD uses hysteresis (start at `onset`, hold while above `offset`): far-field meeting speech dips
below a single 0.5 threshold mid-word (see ../shared/notes/MEASUREMENTS.md, missed speech).
Each speech moment gets the label of the window whose centre is nearest to it.
"""
from __future__ import annotations

from dataclasses import dataclass
from importlib import metadata

import numpy as np

from demix_pipeline.backends.diarization.base import Turn, merge_turns
from demix_pipeline.backends.vad.silero_onnx import RATE, WINDOW, SileroVAD

MEL_STEP_S = 0.01  # resemblyzer's mel hop


@dataclass(frozen=True)
class OfflineDiarizerConfig:
    onset: float = 0.5
    offset: float = 0.35
    min_speech_s: float = 0.2
    min_silence_s: float = 0.3
    window_s: float = 1.5
    hop_s: float = 0.5
    min_window_s: float = 0.4
    distance_threshold: float = 0.3
    min_speaker_s: float = 1.5
    max_speakers: int = 8


def hysteresis_segments(probs: np.ndarray, onset: float, offset: float, min_speech_s: float,
                        min_silence_s: float, step_s: float = WINDOW / RATE) -> list[tuple[float, float]]:
    """Speech spans from per-window probabilities: start above onset, end when below offset."""
    spans: list[list[float]] = []
    start = None
    for i, p in enumerate(probs):
        if start is None and p >= onset:
            start = i
        elif start is not None and p < offset:
            spans.append([start * step_s, i * step_s])
            start = None
    if start is not None:
        spans.append([start * step_s, len(probs) * step_s])
    merged: list[list[float]] = []
    for span in spans:
        if merged and span[0] - merged[-1][1] < min_silence_s:
            merged[-1][1] = span[1]
        else:
            merged.append(span)
    return [(s, e) for s, e in merged if e - s >= min_speech_s]


class OfflineDiarizer:
    name = "offline: silero-vad + resemblyzer + agglomerative clustering"

    def __init__(self, config: OfflineDiarizerConfig = OfflineDiarizerConfig(), vad: SileroVAD | None = None):
        import torch
        from resemblyzer import VoiceEncoder

        torch.set_num_threads(1)
        self.cfg = config
        self.vad = vad or SileroVAD()
        self.encoder = VoiceEncoder(device="cpu", verbose=False)
        self.version = f"silero-vad {metadata.version('silero-vad')}, resemblyzer {metadata.version('resemblyzer')}"

    def speech_spans(self, mono16k: np.ndarray) -> list[tuple[float, float]]:
        cfg = self.cfg
        return hysteresis_segments(self.vad.probabilities(mono16k), cfg.onset, cfg.offset, cfg.min_speech_s,
                                   cfg.min_silence_s)

    def _windows(self, spans: list[tuple[float, float]]) -> list[tuple[float, float]]:
        cfg = self.cfg
        out = []
        for start, end in spans:
            if end - start < cfg.min_window_s:
                continue
            if end - start <= cfg.window_s:
                out.append((start, end))
                continue
            starts = list(np.arange(start, end - cfg.window_s, cfg.hop_s)) + [end - cfg.window_s]
            out += [(s, s + cfg.window_s) for s in starts]
        return out

    def embed(self, mono16k: np.ndarray, windows: list[tuple[float, float]]) -> np.ndarray:
        """One L2-normalised GE2E embedding per window, from one mel spectrogram of the whole clip."""
        import torch
        from resemblyzer.audio import normalize_volume, wav_to_mel_spectrogram

        mel = wav_to_mel_spectrogram(normalize_volume(mono16k.astype(np.float32), -30, increase_only=True))
        by_length: dict[int, list[int]] = {}
        slices = []
        for i, (start, end) in enumerate(windows):
            a = int(round(start / MEL_STEP_S))
            b = min(len(mel), max(a + 1, int(round(end / MEL_STEP_S))))
            slices.append((a, b))
            by_length.setdefault(b - a, []).append(i)
        out = np.zeros((len(windows), 256), np.float32)
        with torch.inference_mode():
            for length, members in by_length.items():
                batch = torch.from_numpy(np.stack([mel[slices[i][0]:slices[i][1]] for i in members]))
                out[members] = self.encoder(batch).numpy()
        return out

    def cluster(self, embeddings: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """Cluster label per embedding; small clusters folded into their nearest big one."""
        from scipy.cluster.hierarchy import fcluster, linkage

        cfg = self.cfg
        if len(embeddings) == 1:
            return np.zeros(1, int)
        labels = fcluster(linkage(embeddings, "average", metric="cosine"), cfg.distance_threshold, "distance") - 1
        while True:
            ids, inverse = np.unique(labels, return_inverse=True)
            labels = inverse
            mass = np.bincount(labels, weights=weights)
            centroids = np.stack([embeddings[labels == k].mean(0) for k in range(len(ids))])
            centroids /= np.linalg.norm(centroids, axis=1, keepdims=True) + 1e-9
            small = [k for k in np.argsort(mass) if mass[k] < cfg.min_speaker_s]
            if len(ids) > cfg.max_speakers:
                small = [int(np.argmin(mass))]
            if not small or len(ids) == 1:
                return labels
            k = small[0]
            similarity = centroids @ centroids[k]
            similarity[k] = -np.inf
            labels = np.where(labels == k, int(np.argmax(similarity)), labels)

    def diarize(self, mono16k: np.ndarray) -> list[Turn]:
        spans = self.speech_spans(mono16k)
        windows = self._windows(spans)
        if not windows:
            return [Turn(s, e, "S0") for s, e in spans]
        embeddings = self.embed(mono16k, windows)
        labels = self.cluster(embeddings, np.array([e - s for s, e in windows]) * (self.cfg.hop_s / self.cfg.window_s))
        centres = np.array([(s + e) / 2 for s, e in windows])
        # name speakers by first appearance so labels are stable
        order = {}
        for label in labels[np.argsort(centres, kind="stable")]:
            order.setdefault(int(label), f"S{len(order)}")
        step = 0.05
        turns = []
        for start, end in spans:
            grid = np.arange(start, end, step)
            nearest = np.abs(grid[:, None] - centres[None, :]).argmin(1)
            for t, k in zip(grid, nearest):
                turns.append(Turn(float(t), float(min(end, t + step)), order[int(labels[k])]))
        return [Turn(round(t.start_s, 3), round(t.end_s, 3), t.speaker) for t in merge_turns(turns, 1e-6)]
