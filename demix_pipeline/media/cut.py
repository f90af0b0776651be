"""Cut one clip, frame-accurately, with its audio, by re-encoding with ffmpeg.

Input seeking with re-encoding is frame-accurate: ffmpeg decodes from the keyframe before the
seek point and drops frames before it. We seek to 0.3 frame before the clip's first frame (so
rounding can never drop it), take exactly `num_frames` frames, and cut the audio to the same
span, padding with silence where the source's audio ends early.
"""
from __future__ import annotations

import os
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

from demix_pipeline.config import EncodeConfig
from demix_pipeline.media.ffmpeg import ffmpeg_binary


class CutError(RuntimeError):
    """ffmpeg failed to cut a clip; the message carries ffmpeg's last lines."""


@dataclass(frozen=True)
class ClipSpan:
    start_s: float  # seconds from the container start (what ffmpeg's -ss counts from)
    duration_s: float
    num_frames: int
    frame_interval_s: float


def cut_clip(source: str | os.PathLike, dest: Path, span: ClipSpan, encode: EncodeConfig, has_audio: bool) -> None:
    seek = max(0.0, span.start_s - 0.3 * span.frame_interval_s)
    lead = span.start_s - seek
    vf = ["setpts=PTS-STARTPTS"]  # first kept frame at 0, audio trimmed to match below
    if encode.square_pixels:
        vf.append("scale=trunc(iw*sar/2)*2:trunc(ih/2)*2,setsar=1")
    else:
        vf.append("scale=trunc(iw/2)*2:trunc(ih/2)*2")
    cmd = [ffmpeg_binary(encode.ffmpeg), "-nostdin", "-hide_banner", "-loglevel", "error", "-y"]
    if not encode.autorotate:
        cmd.append("-noautorotate")
    cmd += ["-ss", f"{seek:.6f}", "-i", str(source),
            "-map", "0:v:0", "-frames:v", str(span.num_frames), "-vf", ",".join(vf),
            "-c:v", encode.video_codec, "-crf", str(encode.crf), "-preset", encode.preset,
            "-pix_fmt", encode.pix_fmt, "-fps_mode", "passthrough", "-threads", str(encode.threads)]
    if has_audio:
        audio_filter = (f"atrim=start={lead:.6f},asetpts=PTS-STARTPTS,"
                        f"apad=whole_dur={span.duration_s:.6f}")
        cmd += ["-map", "0:a:0", "-af", audio_filter, "-t", f"{span.duration_s:.6f}",
                "-c:a", encode.audio_codec, "-b:a", encode.audio_bitrate]
        if encode.audio_channels:
            cmd += ["-ac", str(encode.audio_channels)]
        if encode.audio_sample_rate:
            cmd += ["-ar", str(encode.audio_sample_rate)]
    cmd += ["-sn", "-dn", "-map_metadata", "-1", "-map_chapters", "-1", "-movflags", "+faststart"]
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.stem}.{uuid.uuid4().hex[:8]}{dest.suffix}")
    limit = max(120.0, 30.0 * span.duration_s)  # far beyond real encode times: only a hang reaches it
    try:
        proc = subprocess.run(cmd + [str(tmp)], capture_output=True, text=True, check=False, timeout=limit)
    except subprocess.TimeoutExpired:
        tmp.unlink(missing_ok=True)
        raise CutError(f"ffmpeg did not finish within {limit:.0f} s") from None
    if proc.returncode != 0 or not tmp.exists() or tmp.stat().st_size == 0:
        tmp.unlink(missing_ok=True)
        tail = " | ".join(proc.stderr.strip().splitlines()[-3:])
        raise CutError(f"ffmpeg exited {proc.returncode}: {tail or 'no output'}")
    os.replace(tmp, dest)
