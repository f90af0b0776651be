"""Offline active speaker: mouth motion of a face track against the speech envelope, over sliding windows.

Per frame, lip activity is the motion of the mouth region (mean absolute change between
consecutive crops) minus the motion of the eye region, so head movement and camera shake cancel
roughly. Per window of `window_s`, the Pearson correlation of lip activity with the speech stem's
envelope (dB, floored) is the evidence that this face is the voice; frames without speech score 0.
The score per frame is a probability-like value: sigmoid((corr - corr_midpoint) * gain) gated by
speech presence and by the face moving its mouth at all (lip activity above `min_activity`).
"""
from __future__ import annotations

import numpy as np

from demix_pipeline.backends.asd.base import CROP, TrackCrops, sigmoid


class LipMotionASD:
    name = "offline: lip-motion / speech-envelope correlation"
    version = "1"

    def __init__(self, window_s: float = 1.5, corr_midpoint: float = 0.1, gain: float = 10.0,
                 min_activity: float = 0.5, envelope_floor_db: float = -50.0):
        self.window_s, self.corr_midpoint, self.gain = window_s, corr_midpoint, gain
        self.min_activity, self.envelope_floor_db = min_activity, envelope_floor_db

    @staticmethod
    def lip_activity(track: TrackCrops) -> np.ndarray:
        """Mouth-region motion minus eye-region motion per crop (first crop: 0)."""
        activity = np.zeros(len(track.crops), np.float32)
        prev = None
        for i, (crop, mouth) in enumerate(zip(track.crops, track.mouth_rel)):
            mx, my = mouth if mouth else (0.5, 0.68)
            my = min(max(my, 0.3), 0.9)
            mouth_rows = slice(int(CROP * max(0.0, my - 0.12)), int(CROP * min(1.0, my + 0.12)))
            mouth_cols = slice(int(CROP * max(0.0, mx - 0.18)), int(CROP * min(1.0, mx + 0.18)))
            eye_rows = slice(int(CROP * max(0.0, my - 0.42)), int(CROP * max(0.05, my - 0.22)))
            current = crop.astype(np.float32)
            if prev is not None:
                mouth_motion = np.abs(current[mouth_rows, mouth_cols] - prev[mouth_rows, mouth_cols]).mean()
                eye_motion = np.abs(current[eye_rows, mouth_cols] - prev[eye_rows, mouth_cols]).mean()
                activity[i] = max(0.0, mouth_motion - eye_motion)
            prev = current
        return activity

    def score(self, track: TrackCrops, envelope_db: np.ndarray, speech: np.ndarray) -> np.ndarray:
        """Speaking probability per crop; envelope_db and speech (bool) are sampled at the crop times."""
        n = len(track.times)
        if n < 3:
            return np.zeros(n, np.float32)
        activity = self.lip_activity(track)
        envelope = np.maximum(envelope_db, self.envelope_floor_db)
        times = np.asarray(track.times)
        scores = np.zeros(n, np.float32)
        for i in range(n):
            if not speech[i]:
                continue
            window = np.abs(times - times[i]) <= self.window_s / 2
            a, e = activity[window], envelope[window]
            if len(a) < 4 or a.std() < 1e-6 or e.std() < 1e-6 or a.mean() < self.min_activity:
                continue
            corr = float(np.corrcoef(a, e)[0, 1])
            scores[i] = sigmoid(np.array((corr - self.corr_midpoint) * self.gain))
        return scores
