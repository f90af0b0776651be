"""Split what is left after speech removal into music and effects (offline separator A).

Harmonic/percussive/residual separation (median filtering of the spectrogram, librosa's HPSS
with a margin): the harmonic part, stable in pitch over time, is music; the percussive part and
the noise-like rest are effects, except that percussion goes to music when it is rhythmic (its
onset envelope repeats at 0.25-1.5 s lags with autocorrelation >= `rhythm_threshold`) and rides
on a tonal layer (harmonic level within `tonal_margin_db` of the percussive level). Measured on
../shared/media: drum and bass-drum clips are rhythmic with a strong tonal layer; hammer blows
are rhythmic too but have no tonal layer (harmonic 23 dB under percussive).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from demix_pipeline.media.levels import rms_dbfs


@dataclass(frozen=True)
class ResidualSplit:
    music: np.ndarray
    effects: np.ndarray
    rhythm: float
    percussion_to_music: bool


class HarmonicPercussiveSplitter:
    name = "hpss-rhythm"

    def __init__(self, n_fft: int = 2048, hop: int = 512, margin: float = 2.0, rhythm_threshold: float = 0.4,
                 tonal_margin_db: float = 10.0):
        import librosa

        self.librosa = librosa
        self.version = f"librosa {librosa.__version__}"
        self.n_fft, self.hop, self.margin = n_fft, hop, margin
        self.rhythm_threshold, self.tonal_margin_db = rhythm_threshold, tonal_margin_db

    def split(self, residual: np.ndarray, rate: int) -> ResidualSplit:
        lr = self.librosa
        if len(residual) < self.n_fft:
            zeros = np.zeros_like(residual)
            return ResidualSplit(zeros, residual.copy(), 0.0, False)
        spec = lr.stft(residual, n_fft=self.n_fft, hop_length=self.hop)
        harmonic, percussive = lr.decompose.hpss(spec, margin=self.margin)
        rest = spec - harmonic - percussive
        envelope = lr.onset.onset_strength(S=lr.amplitude_to_db(np.abs(percussive)), sr=rate, hop_length=self.hop)
        rhythm = _periodicity(envelope, rate / self.hop)

        def back(part):
            return lr.istft(part, hop_length=self.hop, length=len(residual)).astype(np.float32)

        h, p, r = back(harmonic), back(percussive), back(rest)
        to_music = rhythm >= self.rhythm_threshold and rms_dbfs(h) >= rms_dbfs(p) - self.tonal_margin_db
        music = h + p if to_music else h
        effects = r if to_music else p + r
        return ResidualSplit(music, effects, rhythm, bool(to_music))


def _periodicity(envelope: np.ndarray, frames_per_s: float) -> float:
    """Highest normalised autocorrelation of the onset envelope at lags of 0.25-1.5 s."""
    env = envelope - envelope.mean()
    lo, hi = int(0.25 * frames_per_s), int(1.5 * frames_per_s)
    if len(env) <= hi or not np.any(env):
        return 0.0
    ac = np.correlate(env, env, "full")[len(env) - 1:]
    return float(ac[lo:hi].max() / ac[0]) if ac[0] > 0 else 0.0
