"""YOLOX-Nano person (body) boxes from its ONNX export, run by onnxruntime (`person_detector: yolox`).

Why: the offline people detector finds bodies with the BlazePose detector, which is anchored on a
visible face/head, so people seen from behind, far away, or cut off at the head are missed.
YOLOX-Nano (Megvii, Apache-2.0; 0.91 M parameters, COCO mAP 25.3 at 416x416) is a general COCO
object detector trained on whole people in every pose; its weights are a model-store file
(`demix models fetch yolox_nano`, models.lock), not a wheel.

Pre- and post-processing follow YOLOX's own demo (demo/ONNXRuntime/onnx_inference.py with
yolox.data.data_augment.preproc and yolox.utils.demo_postprocess): the BGR picture resized by one
factor to fit 416x416 (bilinear), placed at the top-left of a grey (114) canvas, channels first,
pixel values 0-255; output 1x3549x85, one row per point of the stride-8, 16 and 32 grids (52x52,
26x26, 13x13): (cx, cy) = (offset + cell) x stride, (w, h) = exp(value) x stride, objectness, then
80 class scores (already sigmoid). A person's score is objectness x the person class score (COCO
class 0). Thresholds are the demo's: score >= 0.3 (its `--score_thr` default) and non-maximum
suppression at IoU 0.45 (its `multiclass_nms(nms_thr=0.45)`).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from demix_pipeline.backends.detection.base import Detection
from demix_pipeline.backends.detection.mediapipe_ssd import weighted_nms

MODEL_FILE = "yolox_nano.onnx"
INPUT_SIZE = 416
STRIDES = (8, 16, 32)
PAD_VALUE = 114
PERSON_CLASS = 0
MIN_SCORE = 0.3  # YOLOX demo/ONNXRuntime/onnx_inference.py --score_thr default (tools/demo.py --conf: 0.3 too)
NMS_IOU = 0.45   # YOLOX demo/ONNXRuntime/onnx_inference.py: multiclass_nms(nms_thr=0.45)


def yolox_letterbox(bgr: np.ndarray, size: int = INPUT_SIZE) -> tuple[np.ndarray, float]:
    """YOLOX's preproc: the picture scaled by one factor to fit `size`, top-left on grey 114; (1x3xHxW float32, factor)."""
    import cv2

    h, w = bgr.shape[:2]
    ratio = min(size / h, size / w)
    new_w, new_h = max(1, int(w * ratio)), max(1, int(h * ratio))
    canvas = np.full((size, size, 3), PAD_VALUE, np.uint8)
    canvas[:new_h, :new_w] = cv2.resize(bgr, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(canvas.transpose(2, 0, 1)[None], dtype=np.float32), ratio


def grid_points(size: int = INPUT_SIZE, strides: tuple[int, ...] = STRIDES) -> tuple[np.ndarray, np.ndarray]:
    """Cell (x, y) of every output row and its stride, in the order of the output (stride 8 first, row-major)."""
    cells, steps = [], []
    for stride in strides:
        n = size // stride
        ys, xs = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
        cells.append(np.stack([xs.ravel(), ys.ravel()], 1))
        steps.append(np.full(n * n, stride))
    return np.concatenate(cells).astype(np.float32), np.concatenate(steps).astype(np.float32)[:, None]


def decode(raw: np.ndarray, cells: np.ndarray, strides: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Boxes (n, 4: x0, y0, x1, y1 in input pixels) and scores (n, 80: objectness x class) of the raw output (n, 85)."""
    centre = (raw[:, :2] + cells) * strides
    half = np.exp(raw[:, 2:4]) * strides / 2
    return np.concatenate([centre - half, centre + half], 1), raw[:, 4:5] * raw[:, 5:]


class YoloxPersons:
    """Person boxes (kind="person", `box` = the body) in an RGB frame of any size."""

    name = "yolox-nano"

    def __init__(self, model_file: str | Path, min_score: float = MIN_SCORE, nms_iou: float = NMS_IOU,
                 threads: int = 1, device: str = "cpu"):
        import onnxruntime as ort

        model_file = Path(model_file)
        if not model_file.is_file():
            raise FileNotFoundError(f"YOLOX ONNX file {model_file} does not exist")
        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.intra_op_num_threads = max(1, int(threads))
        options.inter_op_num_threads = 1
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if device == "cuda" else ["CPUExecutionProvider"]
        self.session = ort.InferenceSession(str(model_file), options, providers=providers)
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        self._input = inputs[0].name
        self.cells, self.strides = grid_points()
        if list(inputs[0].shape)[1:] != [3, INPUT_SIZE, INPUT_SIZE] or outputs[0].shape[-2] != len(self.cells):
            raise ValueError(f"{model_file}: input {inputs[0].shape}, output {outputs[0].shape}; YOLOX-Nano's "
                             f"export takes 1x3x{INPUT_SIZE}x{INPUT_SIZE} and gives 1x{len(self.cells)}x85")
        self.min_score, self.nms_iou = min_score, nms_iou
        self.version = f"YOLOX-Nano {model_file.parent.name}/{model_file.name} person >= {min_score}, NMS IoU {nms_iou}"

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        """Persons in one RGB frame, boxes in its pixels (clipped to it), best first."""
        height, width = rgb.shape[:2]
        image, ratio = yolox_letterbox(np.ascontiguousarray(rgb[:, :, ::-1]))  # YOLOX was trained on BGR pictures
        raw = self.session.run(None, {self._input: image})[0][0]
        scores = raw[:, 4] * raw[:, 5 + PERSON_CLASS]
        keep = np.flatnonzero(scores >= self.min_score)
        if len(keep) == 0:
            return []
        boxes, _ = decode(raw[keep], self.cells[keep], self.strides[keep])
        boxes = np.clip(boxes / ratio, 0, [width, height, width, height])
        scores = scores[keep]
        out = []
        for group in weighted_nms(boxes, scores, self.nms_iou):  # hard NMS: each group's best box
            x0, y0, x1, y1 = (float(v) for v in boxes[group[0]])
            if x1 > x0 and y1 > y0:
                out.append(Detection(box=(x0, y0, x1, y1), score=float(scores[group[0]]), kind="person"))
        return out
