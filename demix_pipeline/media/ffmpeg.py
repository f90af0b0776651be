"""Locate an ffmpeg binary: the system's when present, else the static one inside imageio-ffmpeg."""
from __future__ import annotations

import functools
import re
import shutil
import subprocess


@functools.lru_cache(maxsize=None)
def ffmpeg_binary(preference: str = "auto") -> str:
    if preference != "auto":
        return preference
    system = shutil.which("ffmpeg")
    if system:
        return system
    try:
        import imageio_ffmpeg
    except ImportError:
        raise RuntimeError("no ffmpeg found: install the system package `ffmpeg` or the Python package "
                           "`imageio-ffmpeg` (make install does)") from None
    return imageio_ffmpeg.get_ffmpeg_exe()


@functools.lru_cache(maxsize=None)
def ffmpeg_version(binary: str) -> str:
    out = subprocess.run([binary, "-version"], capture_output=True, text=True, check=False).stdout
    return out.split("\n", 1)[0].strip()


def ffmpeg_error_text(path: str, timeout_s: float = 30.0) -> str:
    """FFmpeg's own error lines for a file that does not open (e.g. "moov atom not found")."""
    try:
        proc = subprocess.run([ffmpeg_binary(), "-nostdin", "-hide_banner", "-v", "error", "-i", str(path)],
                              capture_output=True, text=True, timeout=timeout_s, check=False)
    except (OSError, subprocess.TimeoutExpired, RuntimeError):
        return ""
    # "[in#0 @ 0x55d0...] moov atom not found" -> "moov atom not found": addresses differ run to run
    lines = [re.sub(r"^(\[[^\]]*\]\s*)+", "", line.strip()) for line in proc.stderr.splitlines()]
    lines = [line for line in lines if line and "At least one output file must be specified" not in line]
    return "; ".join(dict.fromkeys(lines))[:300]
