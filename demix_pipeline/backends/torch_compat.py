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


_TORCHVISION_LIBRARY = None  # keeps the stand-in op registrations alive


def _pure_nms(dets, scores, iou_threshold: float):
    """torchvision.ops.nms in plain torch: indices kept, by decreasing score."""
    import torch

    order = torch.argsort(scores, descending=True)
    boxes = dets[order]
    areas = (boxes[:, 2] - boxes[:, 0]).clamp(min=0) * (boxes[:, 3] - boxes[:, 1]).clamp(min=0)
    suppressed = torch.zeros(len(order), dtype=torch.bool, device=dets.device)
    keep = []
    for i in range(len(order)):
        if suppressed[i]:
            continue
        keep.append(i)
        top_left = torch.maximum(boxes[i, :2], boxes[i + 1:, :2])
        bottom_right = torch.minimum(boxes[i, 2:], boxes[i + 1:, 2:])
        inter = (bottom_right - top_left).clamp(min=0).prod(dim=1)
        overlap = inter / (areas[i] + areas[i + 1:] - inter).clamp(min=1e-12)
        suppressed[i + 1:] |= overlap > iou_threshold
    return order[torch.tensor(keep, dtype=torch.long, device=dets.device)]


def _torchvision_ops_load() -> bool:
    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        return True
    import torch

    folder = Path(list(spec.submodule_search_locations)[0])
    for lib in sorted(folder.glob("_C*.so")):
        try:
            torch.ops.load_library(str(lib))
            return True
        except (OSError, RuntimeError):
            return False
    return False


def ensure_torchvision_importable() -> None:
    """Only where torchvision's compiled ops fail to load (CUDA wheel, CPU torch): a pure-torch `nms`.

    ultralytics (and transformers' video processors) import torchvision, whose import registers
    fake kernels for `torchvision::nms`; without the compiled library that import fails. Here the
    two NMS ops are defined with a plain-torch implementation and torchvision is told its ops are
    present; other compiled ops (roi_align, deform_conv2d) stay unavailable and fail when called.
    """
    global _TORCHVISION_LIBRARY
    if "torchvision" in sys.modules or _TORCHVISION_LIBRARY is not None or _torchvision_ops_load():
        return
    import torch

    library = torch.library.Library("torchvision", "DEF")
    library.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    library.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    library.impl("nms", _pure_nms, "CompositeExplicitAutograd")
    library.impl("qnms", _pure_nms, "CompositeExplicitAutograd")
    _TORCHVISION_LIBRARY = library
    ensure_torchaudio_importable()
    import torchvision.extension

    torchvision.extension._has_ops = lambda: True
