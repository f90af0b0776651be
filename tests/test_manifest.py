"""Manifest schemas: typed, documented, validated on read, written atomically."""
from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from demix_pipeline.manifest import COLUMNS, ManifestError, read_part, render_docs, schema, to_table, write_atomic

REPO = Path(__file__).resolve().parent.parent


def test_readme_documents_every_column():
    assert (REPO / "manifests" / "README.md").read_text() == render_docs(), \
        "regenerate: python -m demix_pipeline.manifest > manifests/README.md"
    for cols in COLUMNS.values():
        for col in cols:
            assert col.doc.strip()


def test_every_field_carries_doc_stage_and_backend():
    sch = schema("shots", {"shots": "detector demix 1", "ingest": "PyAV"})
    for field in sch:
        meta = {k.decode(): v.decode() for k, v in field.metadata.items()}
        assert meta["doc"] and meta["stage"] in ("shots", "ingest") and meta["backend"]
    assert {k.decode(): v.decode() for k, v in sch.field("shots.duration_s").metadata.items()}["backend"] == "detector demix 1"


def ingest_row(**over):
    row = {"source_id": "ab" * 8, "source_uri": "/x.mp4", "source_kind": "cinematic", "keep": True}
    row.update(over)
    return row


def test_atomic_write_and_validated_read(tmp_path):
    path = tmp_path / "00_ingest" / "part-00000.parquet"
    write_atomic(to_table("ingest", [ingest_row()]), path)
    assert read_part(path, "ingest").num_rows == 1
    assert [p.name for p in path.parent.iterdir()] == ["part-00000.parquet"]


def test_rows_with_unknown_columns_are_rejected():
    with pytest.raises(ManifestError, match="not in its schema"):
        to_table("ingest", [ingest_row(extra=1)])


def test_read_errors_name_file_and_column(tmp_path):
    good = to_table("ingest", [ingest_row()])
    missing = tmp_path / "missing.parquet"
    pq.write_table(good.drop(["fps"]), missing)
    with pytest.raises(ManifestError, match=r"missing.parquet: column 'fps' is missing"):
        read_part(missing, "ingest")
    wrong = tmp_path / "wrong.parquet"
    pq.write_table(good.set_column(good.schema.get_field_index("fps"), "fps", pa.array(["fast"])), wrong)
    with pytest.raises(ManifestError, match=r"wrong.parquet: column 'fps' has type string, expected double"):
        read_part(wrong, "ingest")
    nulls = tmp_path / "nulls.parquet"
    pq.write_table(good.set_column(0, pa.field("source_id", pa.string()), pa.array([None], pa.string())), nulls)
    with pytest.raises(ManifestError, match=r"column 'source_id' has 1 null values"):
        read_part(nulls, "ingest")
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1 not really")
    with pytest.raises(ManifestError, match="broken.parquet: cannot read Parquet"):
        read_part(broken, "ingest")
