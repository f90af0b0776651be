"""Our shot detector: isolated-spike hard cuts plus linear-blend gradual transitions, on YUV thumbnails.

Why it beats stock ContentDetector on real footage (measured on ../shared/media, see bench/shots.py):
- A hard cut is a single-frame spike in the mean absolute YUV difference of consecutive
  thumbnails. It must stand `cut_ratio` times above the mean difference of the frames around
  it, and `consistency_ratio` times above the change inside each side, so zooms, whip pans and
  codec-corruption recovery, which change a run of frames, do not count. The new picture must
  persist for `persist_s`, so flashes and fireworks do not count either. Cuts whose middle frame
  is a blend (2 frames) are found with the same tests on a one-frame gap.
- A gradual transition (fade, dissolve) is where a frame is the average of the frames
  `gradual_half_window_s` before and after it while those two differ: linear blending, which
  camera motion does not produce. Those frames, and near-uniform dark (blank) frames, are
  returned as ranges no clip may contain.

Work per frame is a few numpy reductions over a ~64-px thumbnail taken straight from the
decoder's planes, done in vectorised chunks, so detection runs near decode speed.
"""
from __future__ import annotations

import os

import cv2
import numpy as np

from demix_pipeline.backends.shot_detection.base import ShotBoundaries
from demix_pipeline.config import DemixDetectorConfig, DetectorConfig
from demix_pipeline.media.decode import DecodeReport
from demix_pipeline.media.frames import iter_thumbnail_chunks

VERSION = "1"
_CHUNK = 128


def _mean_abs(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Mean absolute difference per frame of two uint8 stacks (OpenCV's SIMD absdiff)."""
    n = a.shape[0]
    if n == 0:
        return np.zeros(0)
    diff = cv2.absdiff(np.ascontiguousarray(a).reshape(n, -1), np.ascontiguousarray(b).reshape(n, -1))
    return cv2.reduce(diff, 1, cv2.REDUCE_SUM, dtype=cv2.CV_32S)[:, 0] / diff.shape[1]


class DemixDetector:
    name = "demix"
    version = VERSION

    def __init__(self, cfg: DetectorConfig):
        self.cfg = cfg.demix

    def detect(self, path: str | os.PathLike) -> ShotBoundaries:
        state = _Scan(self.cfg)
        report = DecodeReport()
        for chunk, times in iter_thumbnail_chunks(path, self.cfg.thumb_short_side, _CHUNK, report):
            state.times.extend(times)
            state.push(chunk)
        if not state.times:
            raise ValueError("video decodes to no frame")
        bounds = state.finish()
        bounds.decode = report
        return bounds


class _Scan:
    """Streaming state: a short tail of thumbnails plus per-frame scalars for the whole source."""

    def __init__(self, cfg: DemixDetectorConfig):
        self.cfg = cfg
        self.times: list[float] = []
        self.tail = None  # int16 thumbnails of the last frames seen
        self.tail_start = 0  # global index of tail[0]
        self.mad: list[float] = []
        self.luma_mean: list[float] = []
        self.luma_std: list[float] = []
        self.gradual_centres: list[int] = []
        self.next_centre = None
        self.cut_candidates: list[tuple[int, int]] = []  # (index, gap) awaiting evaluation
        self.cuts: dict[int, float] = {}
        self.fps = None

    # -- parameters that depend on the frame rate, fixed from the first chunk ------------------
    def _frames(self, seconds: float, minimum: int) -> int:
        return max(minimum, int(round(seconds * self.fps)))

    def _setup(self) -> None:
        t = np.asarray(self.times)
        step = float(np.median(np.diff(t))) if len(t) > 1 else 0.04
        self.fps = 1.0 / step if step > 0 else 25.0
        c = self.cfg
        self.w = self._frames(c.cut_window_s, 2)
        self.k_persist = self._frames(c.persist_s, 2)
        self.k_cons = self._frames(c.consistency_s, 1)
        self.k_grad = self._frames(c.gradual_half_window_s, 2)
        self.back = max(self.w, self.k_cons + 1, 2 * self.k_grad) + 2
        self.fwd = 2 + max(self.w, self.k_cons, self.k_persist)

    def push(self, frames_in: np.ndarray) -> None:
        if self.fps is None:
            self._setup()
        chunk = frames_in.copy()  # the decoder side reuses its buffer
        start = len(self.mad)
        frames = chunk if self.tail is None else np.concatenate([self.tail, chunk])
        base = self.tail_start
        # consecutive differences and luma statistics of the new frames
        if self.tail is None:
            self.mad.append(0.0)
            diffs = _mean_abs(chunk[1:], chunk[:-1])
        else:
            diffs = _mean_abs(chunk, np.concatenate([self.tail[-1:], chunk[:-1]]))
        self.mad.extend(diffs.tolist())
        luma = np.ascontiguousarray(chunk[..., 0]).reshape(len(chunk), -1)
        means = cv2.reduce(luma, 1, cv2.REDUCE_SUM, dtype=cv2.CV_32S)[:, 0] / luma.shape[1]
        stds = np.full(len(chunk), np.inf)
        dark = np.flatnonzero(means <= self.cfg.blank_max_luma)  # std only matters for blank frames
        if len(dark):
            stds[dark] = luma[dark].std(axis=1)
        self.luma_mean.extend(means.tolist())
        self.luma_std.extend(stds.tolist())
        self._gradual(frames, base)
        self._add_candidates(start)
        self._evaluate(frames, base, final=False)
        keep = self.back + self.fwd + 4
        self.tail = frames[-keep:]
        self.tail_start = base + len(frames) - len(self.tail)

    def _add_candidates(self, start: int) -> None:
        """Hard-cut candidates among the new frames: one-frame jumps, and two-frame (blended) ones."""
        lo = self.cfg.cut_min_diff
        mad = self.mad
        for i in range(max(1, start), len(mad)):
            if mad[i] >= lo:
                self.cut_candidates.append((i, 1))
            if i >= 2 and min(mad[i - 1], mad[i]) >= 0.3 * lo:
                self.cut_candidates.append((i - 1, 2))

    def _gradual(self, frames: np.ndarray, base: int) -> None:
        k = self.k_grad
        first = k if self.next_centre is None else self.next_centre
        last = base + len(frames) - 1 - k  # centres whose window is complete
        if last < first:
            return
        centres = np.arange(first, last + 1)
        self.next_centre = last + 1
        a = frames[centres - k - base]
        b = frames[centres + k - base]
        ab = _mean_abs(a, b)
        sel = ab >= self.cfg.gradual_min_diff
        if not sel.any():
            return
        c_idx, a, b, ab = centres[sel], a[sel], b[sel], ab[sel]
        m = frames[c_idx - base]
        lin = _mean_abs(m, cv2.addWeighted(a.reshape(len(a), -1), 0.5, b.reshape(len(b), -1), 0.5, 0).reshape(a.shape))
        ok = (lin <= self.cfg.gradual_linearity * ab) & (_mean_abs(m, a) >= 0.25 * ab) & (_mean_abs(m, b) >= 0.25 * ab)
        self.gradual_centres.extend(c_idx[ok].tolist())

    def _evaluate(self, frames: np.ndarray, base: int, final: bool) -> None:
        end = base + len(frames)
        waiting = []
        for i, gap in self.cut_candidates:
            if not final and i + gap - 1 + self.fwd >= end:
                waiting.append((i, gap))
                continue
            score = self._cut_score(frames, base, end, i, gap)
            if score is not None:
                at = i if gap == 1 or self.mad[i] >= self.mad[i + 1] else i + 1
                self.cuts[at] = max(self.cuts.get(at, 0.0), score)
        self.cut_candidates = waiting

    def _cut_score(self, frames, base, end, i, gap) -> float | None:
        c = self.cfg
        mad = self.mad
        n = len(mad)

        def d(p: int, q: int) -> float:
            p, q = min(max(p, base), end - 1), min(max(q, base), end - 1)
            return float(_mean_abs(frames[p - base][None], frames[q - base][None])[0])

        if i < 1 or i + gap - 1 >= n:
            return None
        jump = mad[i] if gap == 1 else d(i - 1, i + 1)
        if jump < c.cut_min_diff:
            return None
        if gap == 2 and min(mad[i], mad[i + 1]) < 0.3 * jump:
            return None
        before = mad[max(1, i - self.w):i]
        after = mad[i + gap:i + gap + self.w]
        around = max(np.mean(before) if before else 0.0, np.mean(after) if after else 0.0, 0.5)
        if jump < c.cut_ratio * around:
            return None
        new = i - 1 + gap  # first frame of the new shot
        inside = max(d(i - 1, i - 1 - self.k_cons), d(new, new + self.k_cons), 0.5)
        if jump < c.consistency_ratio * inside:
            return None
        for k in range(self.k_persist):
            if new + k >= end:
                break
            if d(new + k, i - 1) < c.persist_frac * jump:
                return None  # the old picture comes back: a flash, not a cut
        return jump

    def finish(self) -> ShotBoundaries:
        if self.tail is not None:
            self._evaluate(self.tail, self.tail_start, final=True)
        return self.boundaries(self.cuts)

    def boundaries(self, cuts: dict[int, float], extra: list[tuple[int, int, str]] = ()) -> ShotBoundaries:
        """Cuts (strongest first, at least min_scene_len_s apart and from the ends), our transition
        and blank ranges, and `extra` ranges no clip may contain."""
        times = np.asarray(self.times, dtype=np.float64)
        n = len(times)
        edge = self._frames(self.cfg.min_scene_len_s, 1) if self.fps else 1
        kept: list[int] = []
        for idx, _ in sorted(cuts.items(), key=lambda kv: -kv[1]):
            if idx < edge or idx > n - edge:
                continue
            if all(abs(idx - other) >= edge for other in kept):
                kept.append(idx)
        kept.sort()
        excluded = _runs(self.gradual_centres, self.k_grad, n, "gradual") + list(extra)
        luma_mean = np.asarray(self.luma_mean)
        luma_std = np.asarray(self.luma_std)
        blank = np.flatnonzero((luma_mean <= self.cfg.blank_max_luma) & (luma_std <= self.cfg.blank_max_std))
        excluded += _runs(blank.tolist(), 0, n, "blank")
        return ShotBoundaries(times=times, cuts=kept, cut_scores={i: cuts[i] for i in kept},
                              excluded=_merged(excluded))


def _runs(indices: list[int], pad: int, n: int, kind: str) -> list[tuple[int, int, str]]:
    """Consecutive indices as [start, end) ranges, widened by `pad` frames each side."""
    out: list[tuple[int, int, str]] = []
    for idx in sorted(set(indices)):
        lo, hi = max(0, idx - pad), min(n, idx + pad + 1)
        if out and lo <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], hi), kind)
        else:
            out.append((lo, hi, kind))
    return out


def _merged(ranges: list[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    """Sorted ranges, overlapping ones of the same kind joined."""
    out: list[tuple[int, int, str]] = []
    for start, end, kind in sorted(ranges):
        if out and out[-1][2] == kind and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end), kind)
        else:
            out.append((start, end, kind))
    return out
