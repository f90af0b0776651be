"""source_id: from content, not path; large files sampled, not read whole."""
from __future__ import annotations

import os

from demix_pipeline.media.hashing import content_id


def test_same_content_same_id_anywhere(tmp_path):
    data = os.urandom(300_000)
    (tmp_path / "a.mp4").write_bytes(data)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.mov").write_bytes(data)
    assert content_id(tmp_path / "a.mp4") == content_id(tmp_path / "sub" / "b.mov")
    (tmp_path / "c.mp4").write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    assert content_id(tmp_path / "c.mp4") != content_id(tmp_path / "a.mp4")


def test_large_files_are_sampled(tmp_path):
    big = tmp_path / "big.bin"
    chunk = 4096
    data = bytearray(os.urandom(chunk * 20))
    big.write_bytes(bytes(data))
    before = content_id(big, chunk_bytes=chunk, chunks=3)
    assert len(before) == 16
    data[chunk * 3] ^= 1  # a byte outside the three sampled chunks (offsets 0, 9.5 and 19 chunks)
    big.write_bytes(bytes(data))
    assert content_id(big, chunk_bytes=chunk, chunks=3) == before
    data[0] ^= 1
    big.write_bytes(bytes(data))
    assert content_id(big, chunk_bytes=chunk, chunks=3) != before
