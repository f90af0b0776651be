"""Decode a clip's audio once, then hand each consumer the rate and channels it needs.

`ClipAudio.load(path)` decodes every channel at the native rate (float32, [-1, 1]). `at(rate,
mono)` resamples once per target rate (soxr, high quality) and caches the result, so the stages
and backends of one clip share a single decode.

Channel rules: `mono=True` averages the channels. Clips made by `shots` are stereo by default
(5.1 sources are downmixed there with ffmpeg's standard matrix: centre and surrounds at -3 dB
into left/right, LFE dropped); a clip that kept 5.1 (`shots.encode.audio_channels: 0`) is
averaged over all six channels for mono, and backends that need stereo get FFmpeg's downmix
through `stereo()`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import av
import numpy as np
import soxr

from demix_pipeline.media.decode import DecodeReport, TooDamaged, decode_frames


class AudioDecodeError(RuntimeError):
    """The file has no audio stream or its audio does not decode."""


@dataclass
class ClipAudio:
    samples: np.ndarray  # (channels, n) float32 at `rate`
    rate: int
    layout: str
    _cache: dict = field(default_factory=dict, repr=False)
    decode: DecodeReport = field(default_factory=DecodeReport)  # packets that did not decode: silence, marked

    @classmethod
    def load(cls, path: str | os.PathLike, stereo: bool = False) -> "ClipAudio":
        """Decode all audio; with stereo=True FFmpeg downmixes to two channels while decoding."""
        try:
            container = av.open(str(path))
        except av.error.FFmpegError as exc:
            raise AudioDecodeError(f"cannot open: {exc}") from None
        with container:
            if not container.streams.audio:
                raise AudioDecodeError("no audio stream")
            stream = container.streams.audio[0]
            rate = stream.codec_context.sample_rate
            layout = "stereo" if stereo else stream.codec_context.layout.name
            resampler = av.AudioResampler(format="fltp", layout=layout, rate=rate)
            chunks = []
            report = DecodeReport()
            try:
                for frame in decode_frames(container, stream, report):
                    for out in resampler.resample(frame):
                        chunks.append(out.to_ndarray())
                for out in resampler.resample(None):
                    chunks.append(out.to_ndarray())
            except (av.error.FFmpegError, TooDamaged) as exc:
                if not chunks:
                    raise AudioDecodeError(f"audio does not decode: {exc}") from None
                report.errors += 1  # the rest of the stream is lost: marked, not silently short
                report.last_error = str(exc)
        if not chunks:
            return cls(np.zeros((1, 0), np.float32), rate, layout, decode=report)
        samples = np.concatenate(chunks, axis=1).astype(np.float32, copy=False)
        return cls(_silence_where_lost(samples, rate, report), rate, layout, decode=report)

    @property
    def real_fraction(self) -> float:
        """Share of the decoded duration that came from packets that decoded (the rest is silence put in
        for lost packets, so that time stays aligned with the picture)."""
        duration = self.duration_s
        return 1.0 if duration <= 0 else max(0.0, 1.0 - self.decode.lost_s / duration)

    @property
    def duration_s(self) -> float:
        return self.samples.shape[1] / self.rate

    def at(self, rate: int, mono: bool = True) -> np.ndarray:
        """(n,) if mono else (channels, n), float32 at `rate`, resampled once and cached."""
        key = (rate, mono)
        if key not in self._cache:
            data = self.samples.mean(axis=0, keepdims=True) if mono else self.samples
            if rate != self.rate and data.shape[1]:
                data = soxr.resample(data.T, self.rate, rate, quality="HQ").T.astype(np.float32)
            self._cache[key] = np.ascontiguousarray(data[0] if mono else data)
        return self._cache[key]


def _silence_where_lost(samples: np.ndarray, rate: int, report: DecodeReport) -> np.ndarray:
    """Silence of each lost packet's length put back where it was, so later audio keeps its time."""
    if not report.lost:
        return samples
    pieces, cursor = [], 0
    for start, end in sorted(report.lost):
        at = min(samples.shape[1], max(cursor, int(round(start * rate))))
        pieces += [samples[:, cursor:at], np.zeros((samples.shape[0], int(round((end - start) * rate))), np.float32)]
        cursor = at
    pieces.append(samples[:, cursor:])
    return np.concatenate(pieces, axis=1)
