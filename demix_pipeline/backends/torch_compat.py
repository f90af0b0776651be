"""Make the registry's CUDA-only torchaudio wheel importable next to CPU torch (pure-Python parts only).

torchaudio 2.11.0 on PyPI is a CUDA build; with torch 2.13.0+cpu its compiled extension fails to
load, and `import torchaudio` fails with it. Only in that case, before torchaudio is first imported,
this registers a stand-in `torchaudio._extension` that reports the extension absent, so the pure
torch parts (torchaudio.functional.resample, used by audiobox-aesthetics) work. Where the extension
loads (a GPU cluster with matching wheels) this does nothing.
"""
from __future__ import annotations

import ctypes
import importlib.util
import sys
import types
from pathlib import Path


def _extension_loads() -> bool:
    spec = importlib.util.find_spec("torchaudio")
    if spec is None or not spec.submodule_search_locations:
        return True  # not installed: nothing to do
    lib = Path(list(spec.submodule_search_locations)[0]) / "lib"
    try:
        import torch  # noqa: F401  (libtorchaudio links against torch's libraries)

        for name in ("libtorchaudio.so", "_torchaudio.abi3.so"):
            if (lib / name).exists():
                ctypes.CDLL(str(lib / name))
        return True
    except OSError:
        return False


def ensure_torchaudio_importable() -> None:
    if "torchaudio" in sys.modules or _extension_loads():
        return
    stub = types.ModuleType("torchaudio._extension")
    stub._IS_TORCHAUDIO_EXT_AVAILABLE = False
    stub._IS_ALIGN_AVAILABLE = False
    stub._check_cuda_version = lambda: None

    def fail_if_no_align(func):
        def wrapped(*_args, **_kwargs):
            raise RuntimeError("torchaudio's compiled extension is not available on this machine (CPU torch)")
        return wrapped

    stub.fail_if_no_align = fail_if_no_align
    sys.modules["torchaudio._extension"] = stub
