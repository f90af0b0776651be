"""Locate an ffmpeg binary: the system's when present, else the static one inside imageio-ffmpeg."""
from __future__ import annotations

import functools
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
