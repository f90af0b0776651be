"""`demix models list | fetch | verify | import`: fill the model store on a connected machine, check it on the cluster."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from demix_pipeline.config import ConfigError, load_config
from demix_pipeline.models import (check_model, import_model, models_dir, read_repo_lock, read_store_lock,
                                   verify_store)


def _root(args, must_exist: bool = True) -> Path:
    cfg = load_config(getattr(args, "config", None), getattr(args, "set", []))
    root = models_dir(args.models_dir or cfg.run.models_dir)
    if root is None:
        raise ConfigError("no model store: give --models-dir, set DEMIX_MODELS or run.models_dir")
    if must_exist and not root.is_dir():
        raise ConfigError(f"model store {root} does not exist (fill it with `demix models fetch`)")
    return root


def _selected(args) -> dict[str, str]:
    """Model name -> config key, for every model the current config's backends load."""
    from demix_pipeline.stages import IMPLEMENTED, stage_class

    cfg = load_config(args.config, args.set)
    return {name: key for stage in IMPLEMENTED for name, key, _ in stage_class(stage).required_models(cfg)}


def cmd_list(args) -> int:
    from demix_pipeline.cli import print_table

    root = _root(args, must_exist=False)
    repo = read_repo_lock()
    store = read_store_lock(root) if root.is_dir() else {}
    selected = _selected(args)
    rows = []
    for name in sorted(set(repo) | set(store) | set(selected)):
        entry = repo.get(name, {})
        state = check_model(root, name, entry or None) if root.is_dir() else None
        source = entry.get("source") or store.get(name, {}).get("source") or {}
        rows.append({
            "model": name, "config": entry.get("config") or selected.get(name, "-"),
            "selected": name in selected, "present": bool(state and state.present),
            "recorded": bool(state and state.recorded), "verified": bool(state and state.verified),
            "problems": state.problems if state and (state.present or state.recorded) else [],
            "source": next((f"{k}: {v}" for k, v in source.items() if k in ("hub", "url", "import")), "-"),
            "licence": entry.get("licence", "-"),
        })
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"model store: {root}{'' if root.is_dir() else ' (does not exist yet)'}")
    yes = lambda v: "yes" if v else "no"  # noqa: E731
    print_table(["model", "config key", "selected", "present", "verified", "licence", "source"],
                [[r["model"], r["config"], yes(r["selected"]), yes(r["present"]), yes(r["verified"]),
                  r["licence"].split(" (")[0], r["source"][:60]] for r in rows])
    for r in rows:
        for problem in r["problems"]:
            print(f"{r['model']}: {problem}")
    return 0


def cmd_fetch(args) -> int:
    from demix_pipeline.model_fetch import FetchError, fetch_model

    root = _root(args, must_exist=False)
    root.mkdir(parents=True, exist_ok=True)
    repo = read_repo_lock()
    names = args.names or [n for n, e in repo.items() if "import" not in e["source"]]
    unknown = [n for n in names if n not in repo]
    if unknown:
        raise ConfigError(f"not in models.lock: {', '.join(unknown)} (known: {', '.join(repo)})")
    failed = 0
    for name in names:
        try:
            entry = fetch_model(root, name, repo[name], progress=not args.quiet)
            print(f"{name}: {len(entry['files'])} files recorded in {root / 'models.lock'}")
        except FetchError as exc:
            failed += 1
            print(f"{name}: {exc}", file=sys.stderr)
    return 1 if failed else 0


def cmd_verify(args) -> int:
    root = _root(args)
    states = verify_store(root)
    unrecorded = sorted(p.name for p in root.iterdir() if p.is_dir() and p.name not in states)
    bad = 0
    for name, state in states.items():
        print(f"{name}: {'ok' if state.verified else 'FAILED'}" + "".join(f"\n  {p}" for p in state.problems))
        bad += not state.verified
    for name in unrecorded:
        print(f"{name}: not recorded (no sha256 to check against; `demix models import {name} {root / name}` records it)")
    for name, key in _selected(args).items():
        if name not in states:
            bad += 1
            print(f"{name}: FAILED\n  selected by {key} but not recorded in the store; `demix models fetch {name}`")
    print(f"{len(states) - sum(not s.verified for s in states.values())} of {len(states)} recorded models verified")
    return 1 if bad else 0


def cmd_import(args) -> int:
    root = _root(args, must_exist=False)
    entry = import_model(root, args.name, Path(args.path), args.as_name)
    for rel, rec in entry["files"].items():
        print(f"{args.name}/{rel}  sha256 {rec['sha256']}  {rec['size']} bytes")
    return 0


def add_parser(sub, config_args) -> None:
    p = sub.add_parser("models", help="the model store: list, fetch (connected machine), verify (offline), import")
    msub = p.add_subparsers(dest="models_command", required=True)

    def common(q):
        q.add_argument("--models-dir", help="the store (default: DEMIX_MODELS or run.models_dir)")
        config_args(q)

    q = msub.add_parser("list", help="models of models.lock and the store: selected by the config, present, verified")
    common(q)
    q.add_argument("--json", action="store_true", help="print JSON instead of a table")
    q.set_defaults(func=cmd_list)
    q = msub.add_parser("fetch", help="download models (default: all with a public source), resumable, sha256-checked")
    common(q)
    q.add_argument("names", nargs="*", metavar="NAME", help="models of models.lock (default: every one with a public source)")
    q.add_argument("--quiet", action="store_true", help="no progress bars")
    q.set_defaults(func=cmd_fetch)
    q = msub.add_parser("verify", help="rehash every recorded file (offline); exit 1 on any mismatch")
    common(q)
    q.set_defaults(func=cmd_verify)
    q = msub.add_parser("import", help="copy your own checkpoint (file or folder) into the store and record its sha256")
    common(q)
    q.add_argument("name", metavar="NAME")
    q.add_argument("path", metavar="PATH")
    q.add_argument("--as", dest="as_name", help="file name in the store (default: the one models.lock expects)")
    q.set_defaults(func=cmd_import)
