"""RNNoise (the librnnoise.so inside the pyrnnoise wheel, called directly): an independent second
speech estimate for the cross-check. Different model family from DeepFilterNet3 (GRU on 22 bands
vs. deep filtering on ERB + complex coefficients), trained separately.
"""
from __future__ import annotations

import ctypes
from importlib import metadata

import numpy as np

from demix_pipeline.backends.separation._native import RATE, FrameDenoiser, float_pointer


class RNNoise(FrameDenoiser):
    name = "rnnoise"
    rate = RATE
    delay = 960  # measured by cross-correlation on real speech
    scale = 32768.0

    def __init__(self):
        try:
            dist = metadata.distribution("pyrnnoise")
        except metadata.PackageNotFoundError:
            raise RuntimeError("RNNoise needs the pyrnnoise wheel for librnnoise.so: "
                               "`pip install --no-deps pyrnnoise==0.4.5` (make install does)") from None
        lib = ctypes.CDLL(str(dist.locate_file("pyrnnoise/librnnoise.so")))
        lib.rnnoise_create.restype = ctypes.c_void_p
        lib.rnnoise_create.argtypes = [ctypes.c_void_p]
        lib.rnnoise_destroy.argtypes = [ctypes.c_void_p]
        lib.rnnoise_process_frame.restype = ctypes.c_float
        lib.rnnoise_process_frame.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_float), ctypes.POINTER(ctypes.c_float)]
        lib.rnnoise_get_frame_size.restype = ctypes.c_int
        self._lib = lib
        self.frame = int(lib.rnnoise_get_frame_size())
        self.version = dist.version
        self._state = None

    def _process(self, frame_in: np.ndarray, frame_out: np.ndarray) -> None:
        self._lib.rnnoise_process_frame(self._state, float_pointer(frame_out), float_pointer(frame_in))

    def enhance(self, mono48k: np.ndarray) -> np.ndarray:
        if self._state:
            self._lib.rnnoise_destroy(self._state)
        self._state = self._lib.rnnoise_create(None)  # fresh state per clip
        return super().enhance(mono48k)

    def __del__(self):
        if getattr(self, "_state", None):
            self._lib.rnnoise_destroy(self._state)
