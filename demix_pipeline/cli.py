"""`demix` command line: run, status, decide, sample."""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from demix_pipeline.config import STAGE_ORDER, ConfigError, load_config
from demix_pipeline.manifest import ManifestError
from demix_pipeline.models import ModelNotFoundError
from demix_pipeline.stages import IMPLEMENTED
from demix_pipeline.stats import status_rows


def _stages_to_run(stages: str | None, until: str | None) -> list[str]:
    if stages and until:
        raise ConfigError("give --stages or --until, not both")
    if stages:
        chosen = [s.strip() for s in stages.split(",") if s.strip()]
    elif until:
        if until not in STAGE_ORDER:
            raise ConfigError(f"--until {until!r}: stages are {', '.join(STAGE_ORDER)}")
        chosen = [s for s in STAGE_ORDER[: STAGE_ORDER.index(until) + 1] if s in IMPLEMENTED]
    else:
        chosen = list(IMPLEMENTED)
    for name in chosen:
        if name not in STAGE_ORDER:
            raise ConfigError(f"unknown stage {name!r}: stages are {', '.join(STAGE_ORDER)}")
        if name not in IMPLEMENTED:
            raise ConfigError(f"stage {name!r} is not implemented yet (implemented: {', '.join(IMPLEMENTED)})")
    return sorted(chosen, key=STAGE_ORDER.index)


def cmd_run(args) -> int:
    from demix_pipeline.run_lock import run_lock

    with run_lock(args.out, "demix run"):  # one driver per run folder; sweeps a killed run's temporary files
        return _run(args)


def _run(args) -> int:
    from demix_pipeline.models import check_models
    from demix_pipeline.stages import RunContext, stage_class
    from demix_pipeline.stages.ingest import collect_sources
    from demix_pipeline.streaming import run_stages

    cfg = load_config(args.config, args.set)
    if args.keep_errors:
        cfg.run.keep_errors = True
    stages = _stages_to_run(args.stages, args.until)
    sources = None
    if "ingest" in stages:
        if not args.input:
            raise ConfigError("demix run needs --input when it runs ingest")
        sources = collect_sources(args.input, args.kind, cfg.ingest.extensions)
        print(sources.describe(), file=sys.stderr)  # "ingest: N input files; not taken: ..."
    check_models([need for name in stages for need in stage_class(name).required_models(cfg)], cfg.run.models_dir)
    for name in stages:  # a reference tier whose thresholds are unset filters nothing: say so before the work
        warning = stage_class(name)(cfg, RunContext(out=args.out, models_dir=cfg.run.models_dir)).unset_thresholds_warning()
        if warning:
            print(f"warning: {warning}", file=sys.stderr)

    def report(summary) -> None:
        dropped = ", ".join(f"{k}={v}" for k, v in summary.dropped.items()) or "none"
        print(f"{summary.stage}: {summary.status}; {summary.rows_out} rows, {summary.kept} kept, {summary.errors} errors; "
              f"measured {summary.measured} (retried {summary.retried}), reused {summary.reused}, "
              f"passed through {summary.passed_through}; dropped: {dropped}", file=sys.stderr)

    run_stages(stages, cfg, args.out, sources=sources, on_stage=report)
    return 0


def cmd_decide(args) -> int:
    from demix_pipeline.run_lock import run_lock

    with run_lock(args.out, f"demix decide {args.stage}"):
        return _decide(args)


def _decide(args) -> int:
    from demix_pipeline.runner import apply_decide

    cfg = load_config(args.config, args.set)
    if args.stage not in IMPLEMENTED:
        raise ConfigError(f"unknown or unimplemented stage {args.stage!r}")
    summary = apply_decide(args.stage, cfg, args.out)
    dropped = ", ".join(f"{k}={v}" for k, v in summary.dropped.items()) or "none"
    print(f"{args.stage}: re-decided; {summary.rows_out} rows, {summary.kept} kept; dropped: {dropped}")
    print("the next `demix run` rebuilds later stages from their stored measurements and measures only the rows "
          "that newly pass", file=sys.stderr)
    return 0


def cmd_status(args) -> int:
    from demix_pipeline.storage import run_root

    out = run_root(args.out)
    rows = status_rows(out)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print(f"no stage output in {out}")
        return 1
    header = ["stage", "state", "rows in", "rows out", "kept", "errors", "measured/reused/retried/passed",
              "shards done/pending", "hours out/kept", "dropped by reason"]
    body = []
    for r in rows:
        fmt = lambda v: "-" if v is None else str(v)  # noqa: E731
        body.append([r["stage"], r["state"], fmt(r["rows_in"]), fmt(r["rows_out"]), fmt(r["kept"]), fmt(r["errors"]),
                     "/".join(fmt(r[k]) for k in ("measured", "reused", "retried", "passed_through")),
                     f"{r['shards_done']}/{r['shards_pending']}",
                     "-" if r["hours_kept"] is None else f"{r['hours_out'] or 0:.3f}/{r['hours_kept']:.3f}",
                     ", ".join(f"{k}={v}" for k, v in r["dropped"].items()) or "-"])
    print_table(header, body)
    return 0


def print_table(header: list[str], body: list[list[str]]) -> None:
    table = [header, *body]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for i, row in enumerate(table):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))


def cmd_stats(args) -> int:
    from demix_pipeline.stats import dataset_stats, stats_table

    stats = dataset_stats(args.out)
    if args.json:
        print(json.dumps(stats, indent=2))
        return 0
    print_table(*stats_table(stats))
    print(f"test split: {stats['test_clips']} clips from {stats['test_sources']} sources "
          f"({stats['test_hours']:.3f} h); train: {stats['train_clips']} clips from {stats['train_sources']} sources "
          f"({stats['train_hours']:.3f} h)")
    return 0


def cmd_report(args) -> int:
    from demix_pipeline.report import build_report

    print(f"report written: {build_report(args.out, args.dest)}")
    return 0


def cmd_export(args) -> int:
    from demix_pipeline.export import export, verify_export

    subsets = args.subsets.split(",") if args.subsets else None
    splits = args.splits.split(",") if args.splits else None
    if args.verify:  # read-only: the tars, the index and the manifest's digests against each other
        problems = verify_export(args.out, args.dest, subsets, splits)
        for problem in problems:
            print(problem, file=sys.stderr)
        print(f"export verify: {len(problems)} problem(s)", file=sys.stderr)
        return 1 if problems else 0
    export(args.out, args.dest, args.shard_size, subsets, splits, index_only=args.index_only)
    return 0


def cmd_sample(args) -> int:
    from demix_pipeline.sample import make_sample_corpus

    listing = make_sample_corpus(Path(args.out), seed=args.seed)
    print(f"sample corpus written: {listing} (generated video, real speech, synthesised music and effects)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="demix", description="Build the DEMIX audio-video dataset.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = parser.add_subparsers(dest="command", required=True)

    def config_args(p):
        p.add_argument("--config", help="YAML file with `run:` and per-stage sections, over stages/*.yaml")
        p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override one value, e.g. shots.min_clip_s=3 (repeatable)")

    p = sub.add_parser("run", help="run stages; measures only rows with no stored measurement (resumes, grows, retries errors)")
    p.add_argument("--input", nargs="+", help="video files, folders (recursive) or CSV/Parquet lists with `path` [, source_kind]")
    p.add_argument("--out", required=True, help="run folder: manifests and artifacts")
    p.add_argument("--kind", default="cinematic", help="source_kind for inputs that carry none (talking_head, cinematic, film_related)")
    p.add_argument("--stages", help="comma-separated stages to run")
    p.add_argument("--until", help="run every stage up to and including this one")
    p.add_argument("--keep-errors", action="store_true",
                   help="keep rows that failed in an earlier run as they are (default: measure them again)")
    config_args(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("status", help="per stage: rows, kept, dropped by reason, errors, shards, hours")
    p.add_argument("--out", required=True)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("decide", help="re-apply a stage's thresholds to stored measurements (no decoding, no model)")
    p.add_argument("stage")
    p.add_argument("--out", required=True)
    config_args(p)
    p.set_defaults(func=cmd_decide)

    p = sub.add_parser("stats", help="clips and hours per subset and split (needs the assign stage)")
    p.add_argument("--out", required=True)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_stats)

    p = sub.add_parser("report", help="one self-contained HTML report of the run (funnel, distributions, subsets, backends)")
    p.add_argument("--out", required=True)
    p.add_argument("--dest", help="HTML file to write (default: <out>/report.html)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("export", help="WebDataset shards + Parquet index + checksums per subset and split (resumable)")
    p.add_argument("--out", required=True, help="run folder (needs the assign stage)")
    p.add_argument("--dest", help="where to write (default: <out>/export/<subset>/<split>/)")
    p.add_argument("--shard-size", type=int, default=1000, help="clips per tar shard")
    p.add_argument("--subsets", help="comma-separated subsets (default: all five)")
    p.add_argument("--splits", help="comma-separated splits (default: train,test)")
    p.add_argument("--index-only", action="store_true",
                   help="write each folder's index.parquet (clip -> shard) and no tar: the plan of a large export")
    p.add_argument("--verify", action="store_true",
                   help="write nothing; check every tar against checksums.sha256, every sample against index.parquet "
                        "and the index against the manifest now (exit 1 on any problem)")
    p.set_defaults(func=cmd_export)

    from demix_pipeline.models_cli import add_parser as add_models_parser

    add_models_parser(sub, config_args)

    p = sub.add_parser("sample", help="generate the demo corpus (no network)")
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=7)
    p.set_defaults(func=cmd_sample)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from demix_pipeline.run_lock import RunLocked
    from demix_pipeline.runner import StageFailed
    from demix_pipeline.stages.ingest import InputError

    try:
        return args.func(args)
    except (ConfigError, ManifestError, StageFailed, InputError, ModelNotFoundError, RunLocked) as exc:
        print(f"demix: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
