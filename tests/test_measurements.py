"""The measurement store: which stored measurement counts, retries of failed ones, folding parts."""
from __future__ import annotations

from demix_pipeline.measurements import MeasurementStore, source_file_key, stage_fingerprint, token


def clip(source: str, index: int, key: str, error: str | None = None) -> dict:
    return {"clip_id": f"{source}-{index:06d}-{index + 1:06d}", "source_id": source, "source_kind": "cinematic",
            "shots.measure_key": key, "shots.duration_s": float(index + 2), "keep": error is None,
            "drop_reason": "error" if error else None, "error": error}


def test_a_clean_measurement_wins_and_a_source_with_a_failed_clip_is_retried(tmp_path):
    store = MeasurementStore(tmp_path, "shots", "source_id")
    store.write([clip("a", 0, "k1"), clip("a", 1, "k1", error="OSError: cut failed"), clip("b", 0, "k1")], {}, "0001", 0)
    lookup = store.lookup({token("a", "k1"), token("b", "k1"), token("c", "k1")}, keep_errors=False)
    assert lookup.reusable == {token("b", "k1")}  # c was never measured, a had a failed clip
    assert lookup.failed_before == {token("a", "k1")}
    assert store.lookup({token("a", "k1")}, keep_errors=True).reusable == {token("a", "k1")}
    store.write([clip("a", 0, "k1"), clip("a", 1, "k1")], {}, "0002", 0)  # the retry succeeds
    lookup = store.lookup({token("a", "k1")}, keep_errors=False)
    assert lookup.reusable == {token("a", "k1")} and not lookup.failed_before
    rows = store.rows({token("a", "k1")}).to_pylist()
    assert sorted(r["clip_id"] for r in rows) == ["a-000000-000001", "a-000001-000002"]
    assert all(r["error"] is None for r in rows)  # all rows of the winning measurement, none of the failed one


def test_another_key_is_another_measurement(tmp_path):
    store = MeasurementStore(tmp_path, "shots", "source_id")
    store.write([clip("a", 0, "k1")], {}, "0001", 0)
    assert not store.lookup({token("a", "k2")}, keep_errors=False).reusable
    store.write([clip("a", 0, "k2")], {}, "0002", 0)
    assert store.lookup({token("a", "k1"), token("a", "k2")}, keep_errors=False).reusable == {token("a", "k1"), token("a", "k2")}


def test_folding_parts_keeps_every_winning_measurement(tmp_path):
    store = MeasurementStore(tmp_path, "shots", "source_id")
    store.write([clip("a", 0, "k1", error="OSError: x")], {}, "0001", 0)
    store.write([clip("a", 0, "k1")], {}, "0002", 0)
    store.write([clip("b", 0, "k1"), clip("b", 1, "k1")], {}, "0002", 1)
    wanted = {token("a", "k1"), token("b", "k1")}
    before = store.rows(wanted).sort_by("clip_id")
    assert not store.compact({}, at_parts=4)  # under the threshold: nothing happens
    assert store.compact({}, at_parts=3)
    assert len(store.parts()) == 1
    assert store.rows(wanted).sort_by("clip_id").equals(before)
    assert store.lookup(wanted, keep_errors=False).reusable == wanted


def test_keys_change_with_what_a_measurement_depends_on(tmp_path):
    base = stage_fingerprint("demix", "1", {"hpss_margin": 2.0}, {"demix": "offline"})
    assert base == stage_fingerprint("demix", "1", {"hpss_margin": 2.0}, {"demix": "offline"})
    assert base != stage_fingerprint("demix", "2", {"hpss_margin": 2.0}, {"demix": "offline"})
    assert base != stage_fingerprint("demix", "1", {"hpss_margin": 3.0}, {"demix": "offline"})
    assert base != stage_fingerprint("demix", "1", {"hpss_margin": 2.0}, {"demix": "reference"})
    video = tmp_path / "a.mp4"
    video.write_bytes(b"x" * 10)
    first = source_file_key(base, str(video), "cinematic")
    assert first != source_file_key(base, str(video), "talking_head")
    video.write_bytes(b"x" * 11)  # the file changed
    assert first != source_file_key(base, str(video), "cinematic")


def test_rows_name_the_workers_that_measured_them_and_folding_keeps_those_names(tmp_path):
    """Provenance is kept as measured: two workers with other packages or weights both stay named, also after a fold."""
    from demix_pipeline.measurements import measured_backends

    store = MeasurementStore(tmp_path, "shots", "source_id")
    store.write([clip("a", 0, "k1")], {"shots": "detector x 1; weights: m sha256:aaaaaaaaaaaa"}, "0001", 0)
    store.write([clip("b", 0, "k1")], {"shots": "detector x 1; weights: m sha256:bbbbbbbbbbbb"}, "0002", 0)
    store.write([clip("c", 0, "k1")], {"shots": "detector x 1; weights: m sha256:cccccccccccc"}, "0003", 0)
    wanted = {token("a", "k1"), token("b", "k1")}
    assert measured_backends(store.rows(wanted), "shots") == {
        "shots": "detector x 1; weights: m sha256:aaaaaaaaaaaa | detector x 1; weights: m sha256:bbbbbbbbbbbb"}
    assert store.compact({"shots": "the driver's string"}, at_parts=2)
    folded = measured_backends(store.rows(wanted), "shots")["shots"]  # a folded part names every worker it holds
    assert all(f"sha256:{c * 12}" in folded for c in "abc") and "driver" not in folded
    assert measured_backends(None, "shots") is None
