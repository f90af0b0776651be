"""Perceptual fingerprints of video sources, to group near-duplicates (re-encoded, rescaled, letter-
or pillarboxed, trimmed) under one id while distinct videos stay apart.

A fingerprint is a time series: a 64-bit DCT pHash per sample (2 a second, each the pHash of a
short triangle-weighted blend of frames, see `fingerprint`), taken after the black borders are
cropped away. Re-encoding and rescaling barely move a pHash;
cropping the borders first makes padding irrelevant; keeping the sample times lets `match` find
the time offset of a trimmed copy (timing survives re-encoding and frame-rate changes, so the
alignment is by time, not by sample index). Flat samples (black, fades, a blank title card) are
dropped: every video has them and they would make distinct videos look alike.

`group` scales past all-pairs comparison with an LSH index over the frame hashes (bit sampling:
a bucket key is a fixed random subset of the 64 bits); only sources that share buckets are matched,
and the colliding samples also propose the time offsets to try.
"""
from __future__ import annotations

import math
import os
from collections import defaultdict
from dataclasses import asdict, dataclass, field

import cv2
import numpy as np
import scipy.fft

from demix_pipeline.media.frames import gray, iter_frames_at

VERSION = "phash-dct32-8x8-crop-blend-v1"

# Defaults, measured on the labelled shared media (see tests/media/test_fingerprint.py): copies
# (x265/mpeg4 re-encodes, 60 % rescales, padded, 10 %-trimmed) align with mean distances of a
# few bits and matched fractions near 1; distinct videos, talking heads included, stay far below.
SAMPLE_FPS = 2.0
HAMMING = 10          # a sample pair within this many of 64 bits counts as the same picture
MIN_MATCHED_FRAC = 0.7  # of the compared samples in the overlap
MAX_MEAN_DISTANCE = 10.0  # mean over the compared samples (copies measured <= 6.0, distinct >= 21)
MIN_OVERLAP_S = 2.0
MIN_OVERLAP_FRAC = 0.5  # of the shorter source: a trim keeps most of the film
MIN_COMPARED = 4
BLACK_LEVEL = 24.0    # luma at or below which a row/column counts as border (limited-range black is 16)
MIN_STD = 3.0         # std (luma levels) of the 32x32 picture below which a sample is flat


@dataclass(frozen=True)
class Fingerprint:
    """Per informative sample: time (s from the first frame) and pHash; plus what was decided once.

    `crop` is (x0, y0, x1, y1) in decoded pixels, before `rotation` (degrees counter-clockwise, from
    the display matrix) is applied, so the hashes describe the picture as displayed.
    """

    times: np.ndarray  # float32, ascending
    hashes: np.ndarray  # uint64
    duration_s: float
    sample_fps: float
    n_sampled: int
    crop: tuple[int, int, int, int]
    size: tuple[int, int]  # decoded (width, height)
    rotation: int = 0
    version: str = VERSION

    def to_record(self) -> dict:
        """Plain values for a manifest row: hashes as int64 (same bits), times as float32 seconds."""
        return {"version": self.version, "times": self.times.astype(np.float32).tolist(),
                "hashes": self.hashes.view(np.int64).tolist(), "duration_s": float(self.duration_s),
                "sample_fps": float(self.sample_fps), "n_sampled": int(self.n_sampled),
                "crop": list(self.crop), "size": list(self.size), "rotation": int(self.rotation)}

    @classmethod
    def from_record(cls, record: dict) -> Fingerprint:
        if record.get("version") != VERSION:
            raise ValueError(f"fingerprint version {record.get('version')!r}, this code reads {VERSION!r}")
        return cls(times=np.asarray(record["times"], np.float32),
                   hashes=np.asarray(record["hashes"], np.int64).view(np.uint64),
                   duration_s=float(record["duration_s"]), sample_fps=float(record["sample_fps"]),
                   n_sampled=int(record["n_sampled"]), crop=tuple(record["crop"]), size=tuple(record["size"]),
                   rotation=int(record.get("rotation", 0)), version=record["version"])


@dataclass(frozen=True)
class MatchResult:
    """How `b` lines up with `a`: b_time = a_time + offset_s. Fractions over the compared samples."""

    same: bool
    offset_s: float = 0.0
    overlap_s: float = 0.0  # length of the common time range at that offset
    compared: int = 0  # samples of the source with fewer samples that found a partner within tolerance
    matched_frac: float = 0.0  # of those, within `hamming` bits
    mean_distance: float = 64.0
    reason: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class GroupResult:
    """groups: source -> group id (smallest source id in its group). reasons: for each source in a
    group of two or more, the neighbour that linked it (its best match) and the figures."""

    groups: dict[str, str]
    reasons: dict[str, tuple[str, MatchResult]] = field(default_factory=dict)
    edges: list[tuple[str, str, MatchResult]] = field(default_factory=list)
    pairs_checked: int = 0


# ---------------------------------------------------------------- fingerprinting


def fingerprint(path: str | os.PathLike, sample_fps: float = SAMPLE_FPS, blend: int = 4, grid: int = 96,
                black_level: float = BLACK_LEVEL, min_std: float = MIN_STD) -> Fingerprint:
    """One decoding pass at `blend` x `sample_fps`: per sample a `grid`x`grid` luma thumbnail that is
    the triangle-weighted mean of the frames within one sample period of its time; per row and
    column, the count of frames brighter than `black_level`. Then crop, rotate and hash.

    Why blend: a copy's samples fall between the original's (a trim cuts at any frame), and in
    fast motion a single frame 0.2 s away is a different picture (measured: a cartoon with a
    rotating background, 10-20 bits at 2 fps). The triangle window makes each thumbnail a smooth
    function of time, so a phase shift changes it by a fraction.
    The crop is decided from the whole sequence (a row is border only if it is dark in almost
    every frame), so a dark scene or a fade does not crop into the picture. Memory: grid^2 bytes a
    sample (96x96 at 2 fps: 66 MB for an hour).
    """
    period = 1.0 / sample_fps
    thumbs: list[np.ndarray] = []
    pending: dict[int, list] = {}  # sample index -> [weighted sum, weight]
    rows = cols = None
    size, rotation, frames, last_t = (0, 0), 0, 0, 0.0

    def flush(upto: int) -> None:
        for k in sorted(i for i in pending if i < upto):
            total, weight = pending.pop(k)
            while len(thumbs) < k:  # a gap in the source longer than a period: repeat the last picture
                thumbs.append(thumbs[-1] if thumbs else np.zeros((grid, grid), np.uint8))
            thumbs.append(np.clip(total / weight + 0.5, 0, 255).astype(np.uint8))

    for t, frame in iter_frames_at(path, sample_fps * blend):
        luma = gray(frame)
        if rows is None:
            size = (luma.shape[1], luma.shape[0])
            rotation = int(round(float(getattr(frame, "rotation", 0) or 0) / 90.0)) * 90 % 360
            rows, cols = np.zeros(luma.shape[0], np.int32), np.zeros(luma.shape[1], np.int32)
        elif luma.shape != (size[1], size[0]):
            luma = cv2.resize(luma, size, interpolation=cv2.INTER_AREA)  # mid-stream size change
        rows += cv2.reduce(luma, 1, cv2.REDUCE_AVG, dtype=cv2.CV_32F)[:, 0] > black_level
        cols += cv2.reduce(luma, 0, cv2.REDUCE_AVG, dtype=cv2.CV_32F)[0] > black_level
        thumb = cv2.resize(luma, (grid, grid), interpolation=cv2.INTER_AREA).astype(np.float32)
        k0 = int(math.floor(t / period + 1e-6))
        for k in (k0, k0 + 1):
            w = max(0.0, 1.0 - abs(t - k * period) / period)
            if w > 1e-6:
                acc = pending.setdefault(k, [np.zeros((grid, grid), np.float32), 0.0])
                acc[0] += w * thumb
                acc[1] += w
        flush(k0)
        frames, last_t = frames + 1, t
    if not frames:
        raise ValueError(f"no frames decoded from {path}")
    flush(1 << 62)
    need = max(1, math.ceil(0.01 * frames))
    y0, y1 = _span(rows >= need)
    x0, x1 = _span(cols >= need)
    width, height = size
    ty0, ty1 = _to_grid(y0, y1, height, grid)
    tx0, tx1 = _to_grid(x0, x1, width, grid)
    hashes, flat = phash(np.stack(thumbs)[:, ty0:ty1, tx0:tx1], rotation, min_std)
    times = np.arange(len(thumbs), dtype=np.float32) * np.float32(period)
    keep = ~flat
    return Fingerprint(times=times[keep], hashes=hashes[keep], duration_s=float(last_t) + 1.0 / (sample_fps * blend),
                       sample_fps=float(sample_fps), n_sampled=len(thumbs), crop=(x0, y0, x1, y1), size=size,
                       rotation=rotation)


def _span(bright: np.ndarray, min_keep: float = 0.2) -> tuple[int, int]:
    """First and one-past-last bright index; the whole range when almost nothing is bright."""
    idx = np.flatnonzero(bright)
    if idx.size == 0 or (idx[-1] + 1 - idx[0]) < min_keep * bright.size:
        return 0, int(bright.size)
    return int(idx[0]), int(idx[-1]) + 1


def _to_grid(lo: int, hi: int, full: int, grid: int) -> tuple[int, int]:
    a = int(round(lo * grid / full))
    b = int(round(hi * grid / full))
    return (a, b) if b - a >= 4 else (0, grid)


def phash(stack: np.ndarray, rotation: int = 0, min_std: float = MIN_STD) -> tuple[np.ndarray, np.ndarray]:
    """64-bit DCT pHashes of (n, h, w) luma images and which of them are flat.

    Each image goes to 32x32 (area average), the 8x8 lowest DCT frequencies are compared with their
    median: bit set where above. Bit order: row-major over the 8x8 block, first coefficient = MSB.
    """
    small = np.empty((len(stack), 32, 32), np.float32)
    for i, image in enumerate(stack):
        small[i] = cv2.resize(np.ascontiguousarray(image), (32, 32), interpolation=cv2.INTER_AREA)
    k = (rotation // 90) % 4
    if k:
        small = np.rot90(small, k, axes=(1, 2))
    flat = small.reshape(len(small), -1).std(axis=1) < min_std
    low = scipy.fft.dctn(small, type=2, axes=(1, 2), norm="ortho")[:, :8, :8].reshape(len(small), 64)
    bits = low > np.median(low, axis=1, keepdims=True)
    hashes = np.packbits(bits, axis=1).view(">u8")[:, 0].astype(np.uint64)
    return hashes, flat


# ---------------------------------------------------------------- matching


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.bitwise_count(np.bitwise_xor(a, b)).astype(np.int16)


def match(a: Fingerprint, b: Fingerprint, offsets: np.ndarray | None = None, hamming_max: int = HAMMING,
          min_matched_frac: float = MIN_MATCHED_FRAC, max_mean_distance: float = MAX_MEAN_DISTANCE,
          min_overlap_s: float = MIN_OVERLAP_S, min_overlap_frac: float = MIN_OVERLAP_FRAC,
          min_compared: int = MIN_COMPARED, top_offsets: int = 5, vote_hamming: int | None = None) -> MatchResult:
    """Best time alignment of `b` against `a`, and whether that makes them the same content.

    Candidate offsets come from votes of sample pairs within `vote_hamming` bits (default
    `hamming_max`; larger finds a best alignment even for distinct videos, to measure margins)
    or from `offsets` (e.g. from the index);
    each is refined over a sample period and scored. Same: enough compared samples, matched
    fraction and mean distance good, and the common time range long enough in seconds and as a
    fraction of the shorter source (a trim keeps most of it; a shared stock shot does not).
    """
    if a.version != b.version:
        raise ValueError(f"fingerprint versions differ: {a.version} vs {b.version}")
    if len(a.hashes) < min_compared or len(b.hashes) < min_compared:
        return MatchResult(False, reason="too_few_samples")
    if offsets is None:
        offsets = _vote_offsets(a, b, hamming_max if vote_hamming is None else vote_hamming, top_offsets)
    if len(offsets) == 0:
        return MatchResult(False, reason="no_close_samples")
    step = 1.0 / min(a.sample_fps, b.sample_fps)
    scored = []
    for base in np.asarray(offsets, np.float64):
        for d in base + step * np.linspace(-0.5, 0.5, 9):
            compared, matched, mean = _score(a, b, float(d), hamming_max, step)
            if compared:
                scored.append(((matched, -mean), float(d), compared, matched, mean))
    if not scored:
        return MatchResult(False, reason="no_overlap")
    top = max(s[0] for s in scored)
    ties = sorted(s for s in scored if s[0] == top)  # nearest-sample pairing is flat over a range
    _, d, compared, matched, mean = ties[len(ties) // 2]
    overlap = max(0.0, min(a.duration_s, b.duration_s - d) - max(0.0, -d))
    frac = matched / compared
    shorter = min(a.duration_s, b.duration_s)
    checks = [("too_few_compared", compared >= min_compared), ("matched_frac", frac >= min_matched_frac),
              ("mean_distance", mean <= max_mean_distance),
              ("overlap_short", overlap + 1e-6 >= min(min_overlap_s, shorter) and overlap + step >= min_overlap_frac * shorter)]
    failed = [name for name, ok in checks if not ok]
    return MatchResult(not failed, round(d, 3), round(overlap, 3), compared, round(frac, 4), round(mean, 3),
                       ",".join(failed))


def _score(a: Fingerprint, b: Fingerprint, d: float, hamming_max: int, step: float) -> tuple[int, int, float]:
    """Compare from the side with fewer samples: each sample against b's nearest sample in time
    (within half a period of its aligned time; flat samples of b were dropped, so none may be near).

    Only the nearest, not the best of two neighbours: taking the minimum of two would favour
    offsets half a period off and make lookalikes pass more easily.
    """
    if len(a.hashes) > len(b.hashes):
        a, b, d = b, a, -d
    t = a.times.astype(np.float64) + d
    tb = b.times.astype(np.float64)
    tol = 0.5 * step + 1e-3
    inside = (t >= -tol) & (t <= b.duration_s + tol)
    if not inside.any():
        return 0, 0, 64.0
    t, ha = t[inside], a.hashes[inside]
    idx = np.clip(np.searchsorted(tb, t), 1, len(tb) - 1)
    j = np.where(np.abs(tb[idx - 1] - t) <= np.abs(tb[idx] - t), idx - 1, idx) if len(tb) > 1 else np.zeros(len(t), int)
    ok = np.abs(tb[j] - t) <= tol
    compared = int(ok.sum())
    if not compared:
        return 0, 0, 64.0
    dist = hamming(ha[ok], b.hashes[j[ok]])
    return compared, int((dist <= hamming_max).sum()), float(dist.mean())


def _vote_offsets(a: Fingerprint, b: Fingerprint, hamming_max: int, top: int, chunk: int = 1024) -> np.ndarray:
    """Offsets (b - a, s) most voted by sample pairs within `hamming_max` bits; closer pairs weigh more."""
    bin_s = 0.5 / max(a.sample_fps, b.sample_fps)
    lo = -float(a.times[-1]) - bin_s
    nbins = int((float(b.times[-1]) - lo) / bin_s) + 2
    votes = np.zeros(nbins, np.float64)
    tb = b.times.astype(np.float64)
    for start in range(0, len(a.hashes), chunk):
        dist = hamming(a.hashes[start:start + chunk, None], b.hashes[None, :])
        i, j = np.nonzero(dist <= hamming_max)
        if i.size:
            bins = ((tb[j] - a.times[start + i] - lo) / bin_s).astype(np.int64)
            np.add.at(votes, bins, (hamming_max + 1 - dist[i, j]).astype(np.float64))
    return _peaks(votes, lo, bin_s, top)


def _peaks(votes: np.ndarray, lo: float, bin_s: float, top: int) -> np.ndarray:
    if not votes.any():
        return np.empty(0)
    smooth = np.convolve(votes, [0.5, 1.0, 0.5], mode="same")
    order = np.argsort(-smooth, kind="stable")
    picked: list[int] = []
    for i in order:
        if smooth[i] <= 0 or len(picked) >= top:
            break
        if all(abs(int(i) - p) > 2 for p in picked):
            picked.append(int(i))
    return lo + (np.array(picked, np.float64) + 0.5) * bin_s


# ---------------------------------------------------------------- grouping


def _lsh_tables(tables: int, bits: int, seed: int = 20240611) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.stack([rng.choice(64, bits, replace=False) for _ in range(tables)])


def lsh_keys(hashes: np.ndarray, tables: int = 8, bits: int = 24) -> np.ndarray:
    """(n, tables) bucket keys: table t's key is the value of `bits` fixed random bits of the hash.

    Two hashes d bits apart share a given table's key with probability about (1 - d/64)^bits:
    0.21 at d=4, 0.04 at d=8, 6e-8 for unrelated pictures (d near 32); eight tables make a close
    sample pair collide somewhere most of the time, and a copy has many close pairs.
    """
    positions = _lsh_tables(tables, bits)
    allbits = np.unpackbits(hashes.astype(">u8").view(np.uint8).reshape(-1, 8), axis=1)  # MSB first
    weights = (1 << np.arange(bits, dtype=np.int64))
    keys = allbits[:, 63 - positions].astype(np.int64) @ weights  # (n, tables, bits) @ (bits,)
    return keys + (np.arange(tables, dtype=np.int64) << 32)[None, :]


def group(fingerprints: dict[str, Fingerprint], tables: int = 8, bits: int = 24, min_shared: int = 2,
          max_bucket_sources: int = 64, per_source_key: int = 3, **match_kwargs) -> GroupResult:
    """Union-find over the matches of source pairs that share at least `min_shared` distinct LSH keys.

    Measured: 11,000 synthetic sources of 200 samples in 26 s (11k pairs matched instead of 60M);
    the bucket walk is plain Python and is what to vectorise first for millions of sources.

    Buckets holding more than `max_bucket_sources` sources are skipped (a hash that common says
    nothing). Within a bucket each source contributes at most `per_source_key` samples, so a
    static video does not flood the offset votes. Deterministic: sources are visited in sorted
    order and a group's id is its smallest source id.
    """
    ids = sorted(fingerprints)
    src, times, keys = [], [], []
    for n, sid in enumerate(ids):
        fp = fingerprints[sid]
        if len(fp.hashes) == 0:
            continue
        k = lsh_keys(fp.hashes, tables, bits)
        src.append(np.full(k.size, n, np.int32))
        times.append(np.repeat(fp.times, tables))
        keys.append(k.reshape(-1))
    votes: dict[tuple[int, int], list[tuple[float, int]]] = defaultdict(list)  # (i, j) -> (tb - ta, key)
    if keys:
        src_a, time_a, key_a = np.concatenate(src), np.concatenate(times), np.concatenate(keys)
        order = np.lexsort((time_a, src_a, key_a))
        src_a, time_a, key_a = src_a[order], time_a[order], key_a[order]
        bounds = np.flatnonzero(np.diff(key_a)) + 1
        starts, ends = np.r_[0, bounds], np.r_[bounds, len(key_a)]
        multi = np.flatnonzero(src_a[starts] != src_a[ends - 1])  # sorted by source: differ => >= 2 sources
        for b in multi:
            s, e = starts[b], ends[b]
            members: dict[int, list[float]] = {}
            for i in range(s, e):
                lst = members.setdefault(int(src_a[i]), [])
                if len(lst) < per_source_key:
                    lst.append(float(time_a[i]))
            if len(members) > max_bucket_sources:
                continue
            key = int(key_a[s])
            srcs = sorted(members)
            for x in range(len(srcs)):
                for y in range(x + 1, len(srcs)):
                    lst = votes[(srcs[x], srcs[y])]
                    for ta in members[srcs[x]]:
                        for tb in members[srcs[y]]:
                            lst.append((tb - ta, key))
    parent = list(range(len(ids)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    result = GroupResult(groups={})
    best: dict[int, tuple[tuple, int, MatchResult]] = {}
    for (i, j) in sorted(votes):
        lst = votes[(i, j)]
        if len({key for _, key in lst}) < min_shared:
            continue
        a, b = fingerprints[ids[i]], fingerprints[ids[j]]
        bin_s = 0.5 / max(a.sample_fps, b.sample_fps)
        offs = np.array([d for d, _ in lst])
        lo = float(offs.min()) - bin_s
        hist = np.bincount(((offs - lo) / bin_s).astype(np.int64)).astype(np.float64)
        res = match(a, b, offsets=_peaks(hist, lo, bin_s, 5), **match_kwargs)
        if not res.same:
            # the index proposes offsets from few collisions; a full vote settles a near miss
            res = match(a, b, **match_kwargs) if res.matched_frac >= 0.3 else res
        result.pairs_checked += 1
        if not res.same:
            continue
        result.edges.append((ids[i], ids[j], res))
        ri, rj = find(i), find(j)
        if ri != rj:
            parent[max(ri, rj)] = min(ri, rj)
        rank = (res.matched_frac, -res.mean_distance)
        for me, other in ((i, j), (j, i)):
            if me not in best or rank > best[me][0]:
                best[me] = (rank, other, res)
    for n, sid in enumerate(ids):
        result.groups[sid] = ids[find(n)]  # the root is the smallest index = smallest id
    for n, (_, other, res) in sorted(best.items()):
        result.reasons[ids[n]] = (ids[other], res)
    return result
