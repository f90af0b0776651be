"""Frame-by-frame speech denoisers in C libraries that ship inside wheels, driven through ctypes.

Both run at 48 kHz on mono frames of 480 samples and delay their output by a fixed number of
samples; `enhance()` feeds the whole signal (plus that many zeros) and returns it realigned, so
the speech estimate lines up sample for sample with the mixture.
"""
from __future__ import annotations

import ctypes

import numpy as np

from demix_pipeline import row_deadline

RATE = 48000


class FrameDenoiser:
    frame: int = 480
    delay: int = 0
    scale: float = 1.0  # input scale the library expects (RNNoise: 16-bit range)

    def _process(self, frame_in: np.ndarray, frame_out: np.ndarray) -> None:
        raise NotImplementedError

    def enhance(self, mono48k: np.ndarray) -> np.ndarray:
        n = len(mono48k)
        total = -(-(n + self.delay) // self.frame) * self.frame
        padded = np.zeros(total, np.float32)
        padded[:n] = mono48k * self.scale
        out = np.zeros(total, np.float32)
        frame_in = np.zeros(self.frame, np.float32)
        frame_out = np.zeros(self.frame, np.float32)
        for index, start in enumerate(range(0, total, self.frame)):
            if index % 1000 == 0:  # about every 10 s of audio
                row_deadline.check(f"while running {self.name}")
            frame_in[:] = padded[start:start + self.frame]
            self._process(frame_in, frame_out)
            out[start:start + self.frame] = frame_out
        return out[self.delay:self.delay + n] / self.scale


def float_pointer(array: np.ndarray):
    return array.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
