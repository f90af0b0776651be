"""Where a run lives: a local folder, or object storage (`s3://bucket/run`, any fsspec protocol).

A run root is a `pathlib.Path` for local folders and a `UPath` (universal-pathlib over fsspec; s3fs
for S3) otherwise, so manifests, markers and artifacts use one path API. The S3 endpoint and
credentials come from the usual AWS variables (`AWS_ENDPOINT_URL` for MinIO, Ceph or moto,
`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_DEFAULT_REGION`), read on every Ray worker.
Media tools that need a real file (ffmpeg, the decoders) get a local copy through `local_input`
and write through `local_output`, which uploads when the block ends. Object stores have no
rename: a single PUT is already all-or-nothing, so "write then rename" becomes one upload.
"""
from __future__ import annotations

import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

RunPath = Any  # pathlib.Path or upath.UPath: both offer /, exists, open, read_text, glob, unlink

# The names of files being written before their rename: `.<name>.<8 hex>.tmp` (temp_name), the clips
# media/cut.py encodes (`.<clip_id>.<8 hex>.mp4`) and stems written before they had a unique part
# (`.<stem file>.tmp.flac`). A kill leaves them; run_lock.sweep_leftovers removes them under the run lock.
TEMP_NAME = re.compile(r"^\..+\.(?:[0-9a-f]{8}\.(?:tmp|[A-Za-z0-9]{2,5})|tmp\.flac)$")


def temp_name(path: RunPath) -> RunPath:
    """A hidden sibling of `path` no other writer uses, to write into before the rename."""
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")


def run_root(out: str | os.PathLike | RunPath) -> RunPath:
    """The run folder named by `--out`: a resolved local Path, or a UPath for a URL."""
    if isinstance(out, Path):
        return out.expanduser().resolve()
    if isinstance(out, str):
        if is_url(out):
            from upath import UPath

            options = {"use_listings_cache": False} if out.startswith(("s3://", "s3a://")) else {}
            return UPath(out, **options)  # listings written by other processes (Ray workers) must not be cached
        return Path(out).expanduser().resolve()
    return out  # already a UPath


def is_url(text: str) -> bool:
    return "://" in text and not text.startswith("file://")


def is_local(path: RunPath) -> bool:
    return isinstance(path, Path)


def ensure_dir(path: RunPath) -> None:
    if is_local(path):
        path.mkdir(parents=True, exist_ok=True)  # object stores have no folders


def remove_tree(path: RunPath) -> None:
    if is_local(path):
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists():
        path.fs.rm(path.path, recursive=True)


def remove_file(path: RunPath) -> None:
    if path.exists():
        path.unlink()


def write_bytes_atomic(data: bytes, path: RunPath) -> None:
    """Readers never see half a file: temporary name + rename locally, one PUT on object storage."""
    if not is_local(path):
        with path.open("wb") as handle:
            handle.write(data)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(path)
    tmp.write_bytes(data)
    os.replace(tmp, path)


@contextmanager
def local_input(path: RunPath) -> Iterator[Path]:
    """A local file with the content of `path` (itself when local; a temporary download otherwise)."""
    if is_local(path):
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="demix-in-") as tmp:
        local = Path(tmp) / path.name
        path.fs.get_file(path.path, str(local))
        yield local


@contextmanager
def local_output(path: RunPath) -> Iterator[Path]:
    """A local file to write `path` into; uploaded when the block ends without an error."""
    if is_local(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="demix-out-") as tmp:
        local = Path(tmp) / path.name
        yield local
        path.fs.put_file(str(local), path.path)

