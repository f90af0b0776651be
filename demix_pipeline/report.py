"""`demix report`: one self-contained HTML file about a run (no network, no script): the funnel per
stage, distributions of the main measures, subset sizes and overlaps, the split, thumbnails per
subset, the backend of every stage and timings. Everything comes from the manifests and
`_stage.json` files; thumbnails are decoded from the clips and inlined as JPEG data URIs.
"""
from __future__ import annotations

import base64
import html
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from demix_pipeline.config import STAGE_ORDER
from demix_pipeline.manifest import read_stage_columns, schema, stage_dir, write_text_atomic
from demix_pipeline.stages import stage_class
from demix_pipeline.stages.assign import SUBSETS
from demix_pipeline.stats import dataset_stats, kept_clips, status_rows, subset_membership
from demix_pipeline.storage import RunPath, local_input, run_root

MEASURES = [  # (column, label) shown as histograms over the clips that reached the column's stage
    ("shots.duration_s", "clip length (s)"),
    ("audio_quality.rms_dbfs", "audio level (dBFS)"),
    ("audio_quality.dnsmos_ovrl", "DNSMOS overall (speech clips)"),
    ("demix.max_l1", "largest compared L1 (demix)"),
    ("voiceover.human_count", "human count"),
    ("voiceover.speech_s", "speech seconds"),
    ("speech_fraction", "speech fraction (speech seconds / clip length)"),
]
STYLE = """body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:.5em 0 1.5em}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}
h2{margin-top:1.6em;border-bottom:1px solid #ddd}figure{display:inline-block;margin:0 1em 1em 0}figcaption{font-size:12px}
.thumbs img{height:90px;margin:2px;border:1px solid #ccc}.note{color:#666;font-size:12px}#backends td{text-align:left}"""


def _table(element_id: str, header: list[str], body: list[list]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    rows = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in body)
    return f'<table id="{element_id}"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>'


def _histogram(values: list[float], label: str, bins: int = 20) -> str:
    """An inline SVG bar chart of `values`."""
    data = np.asarray(values, np.float64)
    data = data[np.isfinite(data)]  # nulls arrive as nan
    if data.size == 0:
        return f"<figure><figcaption>{html.escape(label)}: no values</figcaption></figure>"
    counts, edges = np.histogram(data, bins=bins if data.max() > data.min() else 1)
    width, height, bar = 320, 120, 320 / len(counts)
    top = max(1, counts.max())
    bars = "".join(f'<rect x="{i * bar:.1f}" y="{height - c / top * height:.1f}" width="{max(bar - 1, 1):.1f}" '
                   f'height="{c / top * height:.1f}" fill="#4a7ab5"><title>{edges[i]:.3g} to {edges[i + 1]:.3g}: {c}'
                   f'</title></rect>' for i, c in enumerate(counts))
    svg = (f'<svg width="{width}" height="{height + 14}" xmlns="http://www.w3.org/2000/svg">{bars}'
           f'<text x="0" y="{height + 12}" font-size="10">{edges[0]:.3g}</text>'
           f'<text x="{width}" y="{height + 12}" font-size="10" text-anchor="end">{edges[-1]:.3g}</text></svg>')
    caption = f"{label}: n={data.size}, median {np.median(data):.3g}"
    return f"<figure>{svg}<figcaption>{html.escape(caption)}</figcaption></figure>"


def _thumbnail(path: Path, height: int = 90) -> str | None:
    import cv2

    from demix_pipeline.media.frames import iter_frames_at

    try:
        for _, frame in iter_frames_at(path, 1.0):
            rgb = frame.to_ndarray(format="rgb24", height=height, width=max(2, round(frame.width * height / frame.height)))
            ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 80])
            return "data:image/jpeg;base64," + base64.b64encode(jpeg.tobytes()).decode() if ok else None
    except Exception:  # a clip that does not decode gets no thumbnail, not a broken report
        return None
    return None


def _thumbnail_of(clip: RunPath) -> str | None:
    with local_input(clip) as local:
        return _thumbnail(local)


def _last_stage(out: RunPath) -> str | None:
    return next((name for name in reversed(STAGE_ORDER) if (stage_dir(out, name) / "_SUCCESS").exists()), None)


def build_report(out: str | RunPath, dest: str | RunPath | None = None, thumbs_per_subset: int = 4) -> RunPath:
    out = run_root(out)
    dest = run_root(dest) if dest else out / "report.html"
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>demix run report: {html.escape(out.name)}</title>"
             f"<style>{STYLE}</style></head><body><h1>demix run report</h1>"
             f"<p class='note'>run folder: {html.escape(str(out))}</p>"]
    status = status_rows(out)
    records = {}
    for name in STAGE_ORDER:
        record_path = stage_dir(out, name) / "_stage.json"
        if record_path.exists():
            records[name] = json.loads(record_path.read_text())
    # funnel
    body = []
    hours_in = None  # a stage's input is the previous stage's kept rows
    for row in status:
        name = row["stage"].split("_", 1)[1]
        record = records.get(name, {})
        hours_out, hours_kept = record.get("hours_out") or 0.0, record.get("hours_kept") or 0.0
        dash = lambda value: "-" if value is None else value  # noqa: E731
        body.append([row["stage"], row["state"], dash(row["rows_in"]),
                     f"{hours_out if hours_in is None else hours_in:.3f}", dash(row["rows_out"]), dash(row["kept"]),
                     f"{hours_kept:.3f}", dash(row["errors"]),
                     ", ".join(f"{k}={v}" for k, v in row["dropped"].items()) or "-"])
        hours_in = hours_kept
    parts.append("<h2>Funnel</h2>" + _table("funnel", ["stage", "state", "rows in", "hours in", "rows out", "kept",
                                                       "hours kept", "errors", "dropped by reason"], body))
    # distributions
    last = _last_stage(out)
    present = [column for column, _ in MEASURES if last and column in schema(last).names]
    values = read_stage_columns(out, last, present) if present else None
    if values is not None and values.num_rows:
        if "voiceover.speech_s" in present and "shots.duration_s" in present:
            duration = values.column("shots.duration_s")
            fraction = pc.divide(values.column("voiceover.speech_s"), pc.if_else(pc.greater(duration, 0), duration, None))
            values = values.append_column("speech_fraction", fraction)
        parts.append("<h2>Distributions</h2><p class='note'>over every clip row of the last finished stage</p>")
        parts += [_histogram(values.column(column).to_numpy(zero_copy_only=False), label)
                  for column, label in MEASURES if column in values.column_names]
    # reference thresholds the config leaves unset: their checks remove nothing until set
    for name, record in records.items():
        unset = stage_class(name).unset_thresholds(record.get("config") or {})
        columns = [column for _, column in unset if column in schema(name).names]
        if not columns or not (stage_dir(out, name) / "_SUCCESS").exists():
            continue
        scores = read_stage_columns(out, name, columns)
        command = f"demix decide {name} --out {out} " + " ".join(f"--set {name}.{key}=VALUE" for key, _ in unset)
        parts.append(f"<h2 id='unset-{name}'>Thresholds to set: {name}</h2><p>{html.escape(', '.join(k for k, _ in unset))} "
                     f"unset: this reference backend's check removes no clip. Choose floors from these distributions, "
                     f"then run <code>{html.escape(command)}</code> (no re-measuring).</p>")
        parts += [_histogram(scores.column(column).to_numpy(zero_copy_only=False), column) for column in columns]
    # subsets, overlaps, split
    if (stage_dir(out, "assign") / "_SUCCESS").exists():
        kept = kept_clips(out, ["clip_id", "clip_uri", "caption.text"])
        stats = dataset_stats(out, kept)
        parts.append("<h2>Subsets</h2>" + _table(
            "subsets", ["subset", "clips", "hours", "train clips", "test clips"],
            [[s["subset"], s["clips"], f"{s['hours']:.3f}", s["train_clips"], s["test_clips"]] for s in stats["subsets"]]
            + [["distinct clips", stats["distinct_clips"], f"{stats['hours']:.3f}", stats["train_clips"], stats["test_clips"]]]))
        member = subset_membership(kept)
        overlap = [[a] + [int((member[:, i] & member[:, j]).sum()) for j in range(len(SUBSETS))] for i, a in enumerate(SUBSETS)]
        parts.append("<h3>Overlaps (clips in both)</h3>" + _table("overlaps", ["subset", *SUBSETS], overlap))
        parts.append("<h3>Test split</h3>" + _table("split", ["side", "clips", "sources", "hours"], [
            ["train", stats["train_clips"], stats["train_sources"], f"{stats['train_hours']:.3f}"],
            ["test", stats["test_clips"], stats["test_sources"], f"{stats['test_hours']:.3f}"]]))
        parts.append("<h2>Thumbnails</h2>")
        for subset in SUBSETS:
            chosen = kept.filter(pa.array(member[:, SUBSETS.index(subset)]))
            members = chosen.sort_by("clip_id").slice(0, thumbs_per_subset).to_pylist() if chosen.num_rows else []
            images = [(r, _thumbnail_of(out / r["clip_uri"])) for r in members]
            tags = "".join(f'<img src="{uri}" alt="{html.escape(r["clip_id"])}" title="{html.escape(r.get("caption.text") or "")}">'
                           for r, uri in images if uri)
            parts.append(f"<h3>{subset}</h3><div class='thumbs'>{tags or '<span class=note>none</span>'}</div>")
    # backends and timings
    body = []
    for name, record in records.items():
        backends = "; ".join(f"{k}: {v}" for k, v in (record.get("backends") or {}).items())
        text = backends.lower()
        tier = ("mixed" if "reference" in text and "offline" in text else "reference" if "reference" in text
                else "offline" if "offline" in text else "no model")
        body.append([name, tier, backends, f"{record.get('measure_s') or 0:.1f}", f"{record.get('decide_s') or 0:.2f}",
                     record.get("code_version", "")])
    parts.append("<h2>Backends and timings</h2>" + _table(
        "backends", ["stage", "tier", "backend (versions)", "measure s", "decide s", "code"], body))
    parts.append("</body></html>")
    write_text_atomic("\n".join(parts), dest)
    return dest
