"""Signal levels of decoded audio: RMS, peak, clipping, silence, effective bandwidth, loudness.

Levels are in dBFS (0 = full scale) and floored at FLOOR_DB, which stands for digital silence.
"""
from __future__ import annotations

import numpy as np
import pyloudnorm
from scipy import signal

FLOOR_DB = -120.0


def to_db(power_or_amplitude: float, power: bool = False) -> float:
    value = float(power_or_amplitude)
    if value <= 0:
        return FLOOR_DB
    return max(FLOOR_DB, (10.0 if power else 20.0) * float(np.log10(value)))


def rms_dbfs(samples: np.ndarray) -> float:
    """RMS level over all samples (all channels)."""
    return to_db(float(np.mean(np.square(samples, dtype=np.float64))), power=True) if samples.size else FLOOR_DB


def peak_dbfs(samples: np.ndarray) -> float:
    return to_db(float(np.max(np.abs(samples)))) if samples.size else FLOOR_DB


def clipping_ratio(samples: np.ndarray, level: float = 0.99) -> float:
    """Fraction of samples at or above `level` of full scale."""
    return float(np.mean(np.abs(samples) >= level)) if samples.size else 0.0


def silence_ratio(mono: np.ndarray, rate: int, window_s: float = 0.05, threshold_dbfs: float = -60.0) -> float:
    """Fraction of `window_s` windows whose RMS is below `threshold_dbfs`."""
    size = max(1, int(rate * window_s))
    count = len(mono) // size
    if count == 0:
        return 1.0
    frames = mono[: count * size].reshape(count, size).astype(np.float64)
    power = np.mean(frames * frames, axis=1)
    return float(np.mean(power < 10 ** (threshold_dbfs / 10)))


def bandwidth_hz(mono: np.ndarray, rate: int, drop_db: float = 60.0) -> float:
    """Highest frequency whose long-term power lies within `drop_db` of the spectrum's peak.

    Up-sampled or low-passed audio (telephone, old codecs) shows as a low figure; digital
    silence gives 0.
    """
    if len(mono) < 256 or not np.any(mono):
        return 0.0
    freqs, power = signal.welch(mono.astype(np.float64), fs=rate, nperseg=min(4096, len(mono)))
    power = np.convolve(power, np.ones(5) / 5, mode="same")  # smooth single-bin spikes
    above = np.flatnonzero(power >= power.max() * 10 ** (-drop_db / 10))
    return float(freqs[above[-1]]) if len(above) else 0.0


def loudness_lufs(samples: np.ndarray, rate: int) -> float:
    """Integrated loudness (ITU-R BS.1770-4, gated), channels as given; FLOOR_DB when below the gates."""
    data = samples.T if samples.ndim == 2 else samples
    if data.shape[0] < int(0.4 * rate) + 1:
        return FLOOR_DB
    value = pyloudnorm.Meter(rate).integrated_loudness(data.astype(np.float64))
    return max(FLOOR_DB, float(value)) if np.isfinite(value) else FLOOR_DB
