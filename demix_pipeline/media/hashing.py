"""Content ids: identical files get the same id wherever they lie, without reading huge files whole."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import xxhash


def content_id(path: str | os.PathLike, chunk_bytes: int = 1 << 20, chunks: int = 5) -> str:
    """xxh3-128 over the size and `chunks` evenly spaced chunks; 16 hex digits.

    Files up to chunks*chunk_bytes are hashed whole. Two files that differ only outside the
    sampled chunks (and have equal size) would collide; for video that is practically never.
    """
    size = Path(path).stat().st_size
    with open(path, "rb") as handle:
        return content_id_of(handle, size, chunk_bytes, chunks)


def content_id_of(handle, size: int, chunk_bytes: int = 1 << 20, chunks: int = 5) -> str:
    """content_id of an open, seekable binary file of `size` bytes (a remote file, a member of a tar)."""
    digest = xxhash.xxh3_128()
    digest.update(size.to_bytes(8, "little"))
    if size <= chunks * chunk_bytes:
        digest.update(handle.read())
    else:
        step = (size - chunk_bytes) // (chunks - 1) if chunks > 1 else 0
        for i in range(chunks):
            handle.seek(i * step)
            digest.update(handle.read(chunk_bytes))
    return digest.hexdigest()[:16]


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a whole file, read in 1 MiB blocks (checksums of model files and export shards)."""
    digest = hashlib.sha256()
    with (path.open("rb") if hasattr(path, "open") else open(path, "rb")) as handle:  # Path or UPath
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
