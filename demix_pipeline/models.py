"""The model store: a local folder of weights, one sub-folder per model, never downloaded at run time.

`DEMIX_MODELS` (or config `run.models_dir`) points at it. The repository's `models.lock` lists
every reference model a stage can use (source, files, known sha256, licence); the store's own
`models.lock` (JSON) records what was fetched or imported: each file's sha256, size and mtime.
Reference backends call `resolve_model(name)` in their setup(); the runner calls
`check_models()` before a stage starts any work, so a missing or corrupt model fails at once,
naming the model and the command that fixes it.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import yaml

from demix_pipeline.media.hashing import file_sha256

REPO_LOCK = Path(__file__).resolve().parents[1] / "models.lock"
STORE_LOCK = "models.lock"


class ModelNotFoundError(FileNotFoundError):
    """A reference model is missing from the model store, or its files do not match their record."""


def models_dir(configured: str | os.PathLike | None = None) -> Path | None:
    value = configured or os.environ.get("DEMIX_MODELS")
    return Path(value).expanduser() if value else None


def _how(name: str) -> str:
    return (f"Fix: on a machine with internet access run `demix models fetch {name}` (or `demix models import "
            f"{name} PATH` for your own checkpoint), copy the store to the cluster, point DEMIX_MODELS (or "
            f"run.models_dir) at it and check it with `demix models verify`.")


def resolve_model(name: str, configured_dir: str | os.PathLike | None = None, required_files: tuple[str, ...] = ()) -> Path:
    """Local folder of model `name`, checked to exist and to hold `required_files`."""
    root = models_dir(configured_dir)
    if root is None:
        raise ModelNotFoundError(f"model '{name}' is needed but no model store is configured: set DEMIX_MODELS "
                                 f"or run.models_dir. {_how(name)}")
    folder = root / name
    if not folder.is_dir():
        raise ModelNotFoundError(f"model '{name}' is not in the model store {root} (no folder {folder}). {_how(name)}")
    missing = [f for f in required_files if not (folder / f).exists()]
    if missing:
        raise ModelNotFoundError(f"model '{name}' in {folder} lacks {', '.join(missing)}. {_how(name)}")
    return folder


# ----------------------------------------------------------------------------------------------
# locks

def read_repo_lock(path: str | os.PathLike | None = None) -> dict[str, dict]:
    """The models the stages can use, by name (`DEMIX_MODELS_LOCK` or `path` replaces the repo's file)."""
    lock_path = Path(path or os.environ.get("DEMIX_MODELS_LOCK") or REPO_LOCK)
    data = yaml.safe_load(lock_path.read_text()) or {}
    models = data.get("models") or {}
    for name, entry in models.items():
        if "source" not in entry:
            raise ValueError(f"{lock_path}: model {name!r} has no source")
    return models


def read_store_lock(root: Path) -> dict[str, dict]:
    path = root / STORE_LOCK
    return json.loads(path.read_text()).get("models", {}) if path.exists() else {}


def write_store_lock(root: Path, models: dict[str, dict]) -> None:
    from demix_pipeline.manifest import write_text_atomic

    write_text_atomic(json.dumps({"version": 1, "models": dict(sorted(models.items()))}, indent=2) + "\n",
                      root / STORE_LOCK)


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()


def file_record(path: Path, sha256: str | None = None) -> dict:
    st = path.stat()
    return {"sha256": sha256 or file_sha256(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def record_model(root: Path, name: str, source: dict, origin: str, files: dict[str, dict], **extra) -> dict:
    """Write model `name`'s files (path -> file_record) into the store's lock."""
    models = read_store_lock(root)
    entry = {"source": source, "origin": origin, "recorded_at": now_iso(), "verified_at": now_iso(),
             "files": dict(sorted(files.items())), **extra}
    models[name] = entry
    write_store_lock(root, models)
    return entry


# ----------------------------------------------------------------------------------------------
# checks

_HASHED: set[tuple[str, int, int, str]] = set()  # (path, size, mtime_ns, sha256) found matching in this process


@dataclass
class ModelState:
    name: str
    present: bool          # folder exists and every recorded/expected file is there
    recorded: bool         # the store's lock has an entry (fetched or imported)
    problems: list[str]    # missing files, size or sha256 mismatches

    @property
    def verified(self) -> bool:
        return self.present and self.recorded and not self.problems


def expected_files(lock_entry: dict | None) -> list[str]:
    files = (lock_entry or {}).get("files") or {}
    return sorted(files) if isinstance(files, dict) else []


def check_model(root: Path, name: str, lock_entry: dict | None = None, full: bool = False,
                required_files: tuple[str, ...] = ()) -> ModelState:
    """State of one model; `full` rehashes every file, otherwise only files whose size or mtime changed."""
    folder = root / name
    record = read_store_lock(root).get(name)
    files = dict((record or {}).get("files", {}))
    wanted = sorted(set(files) | set(expected_files(lock_entry)) | set(required_files))
    problems = []
    if not folder.is_dir():
        return ModelState(name, False, record is not None, [f"no folder {folder}"])
    missing = [rel for rel in wanted if not (folder / rel).is_file()]
    problems += [f"{rel}: missing" for rel in missing]
    for rel in wanted:
        path = folder / rel
        if rel in missing:
            continue
        rec = files.get(rel)
        if rec is None:
            continue
        st = path.stat()
        if st.st_size != rec["size"]:
            problems.append(f"{rel}: size {st.st_size} != recorded {rec['size']}")
        elif full or (st.st_mtime_ns != rec.get("mtime_ns") and (str(path), st.st_size, st.st_mtime_ns, rec["sha256"]) not in _HASHED):
            digest = file_sha256(path)
            if digest != rec["sha256"]:
                problems.append(f"{rel}: sha256 {digest[:12]}... != recorded {rec['sha256'][:12]}...")
            else:  # a store copied without its mtimes: hash each file once per process, not once per stage
                _HASHED.add((str(path), st.st_size, st.st_mtime_ns, rec["sha256"]))
    for rel, pinned in ((lock_entry or {}).get("files") or {}).items():
        want = (pinned or {}).get("sha256") if isinstance(pinned, dict) else None
        if want and rel in files and files[rel]["sha256"] != want:
            problems.append(f"{rel}: recorded sha256 differs from models.lock's {want[:12]}...")
    return ModelState(name, not missing, record is not None, problems)


_DIGESTS: dict[tuple[str, int, int], str] = {}  # (path, size, mtime_ns) -> sha256, hashed in this process


def file_digest(path: Path, recorded: dict | None = None) -> str:
    """sha256 of a model file: the store's record while the file's size and mtime still match it, else
    hashed (once per process and file state)."""
    st = path.stat()
    if recorded and recorded.get("size") == st.st_size and recorded.get("mtime_ns") == st.st_mtime_ns:
        return recorded["sha256"]
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _DIGESTS:
        _DIGESTS[key] = file_sha256(path)
    return _DIGESTS[key]


def weights_id(name: str, files: tuple[str, ...] = (), configured_dir: str | os.PathLike | None = None) -> str:
    """What a column's provenance says of the weights it came from: `<store name> sha256:<12 hex>`.

    The files are those the backend opens plus those the store's lock records for the model; with
    several, the id is the sha256 of their `file:sha256` lines (`files-sha256:`). A model that is not in
    the store says so (the runner's check_models then stops the stage with the fix)."""
    root = models_dir(configured_dir)
    folder = root / name if root else None
    if folder is None or not folder.is_dir():
        return f"{name} (not in the model store)"
    recorded = (read_store_lock(root).get(name) or {}).get("files", {})
    wanted = sorted(set(files) | set(recorded))
    present = [rel for rel in wanted if (folder / rel).is_file()]
    if not present:
        return f"{name} (no weights file in {folder})"
    digests = {rel: file_digest(folder / rel, recorded.get(rel)) for rel in present}
    if len(digests) == 1:
        return f"{name} sha256:{next(iter(digests.values()))[:12]}"
    import hashlib

    lines = "\n".join(f"{rel}:{sha}" for rel, sha in sorted(digests.items()))
    return f"{name} files-sha256:{hashlib.sha256(lines.encode()).hexdigest()[:12]} ({len(digests)} files)"


def check_models(needed: list[tuple[str, str, tuple[str, ...]]], configured_dir: str | None = None) -> None:
    """Fail before any work when a model a stage needs is missing or does not match its record.

    `needed` holds (model name, config key that names it, files the backend opens).
    """
    if not needed:
        return
    root = models_dir(configured_dir)
    repo = read_repo_lock()
    errors = []
    for name, key, required in needed:
        if root is None:
            errors.append(f"model '{name}' ({key}) is needed but no model store is configured: set DEMIX_MODELS "
                          f"or run.models_dir. {_how(name)}")
            continue
        state = check_model(root, name, repo.get(name), required_files=required)
        if state.problems:
            errors.append(f"model '{name}' ({key}) in the model store {root} is "
                          f"{'corrupt' if state.present else 'missing'}: {'; '.join(state.problems)}. {_how(name)}")
    if errors:
        raise ModelNotFoundError("\n".join(errors))


def verify_store(root: Path) -> dict[str, ModelState]:
    """Rehash every recorded file (offline); refresh mtimes of files that still match.

    A read-only store (a volume mounted `:ro` on the cluster) is verified all the same; only the
    refreshed mtimes and `verified_at` are not written back.
    """
    states = {}
    repo = read_repo_lock()
    store = read_store_lock(root)
    for name in sorted(store):
        state = check_model(root, name, repo.get(name), full=True)
        states[name] = state
        if not state.problems:
            for rel in store[name]["files"]:
                store[name]["files"][rel]["mtime_ns"] = (root / name / rel).stat().st_mtime_ns
            store[name]["verified_at"] = now_iso()
    if store:
        try:
            write_store_lock(root, store)
        except OSError:
            pass  # read-only store: nothing to record, the verdicts stand
    return states


def import_model(root: Path, name: str, source_path: Path, as_name: str | None = None) -> dict:
    """Copy a user's checkpoint (file or folder) into <store>/<name>/, hash it and record it."""
    source_path = Path(source_path).expanduser().resolve()
    if not source_path.exists():
        raise FileNotFoundError(f"{source_path} does not exist")
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    if source_path.is_file():
        expected = expected_files(read_repo_lock().get(name))
        target = as_name or (expected[0] if len(expected) == 1 else source_path.name)
        copies = {target: source_path}
    else:
        copies = {p.relative_to(source_path).as_posix(): p for p in sorted(source_path.rglob("*")) if p.is_file()}
        if not copies:
            raise FileNotFoundError(f"{source_path} holds no files")
    files = {}
    for rel, src in copies.items():
        dest = folder / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        if src.resolve() != dest.resolve():
            tmp = dest.with_name(dest.name + ".importing")
            shutil.copyfile(src, tmp)
            os.replace(tmp, dest)
        files[rel] = file_record(dest)
    previous = read_store_lock(root).get(name, {}).get("files", {})  # other files of the model stay recorded
    kept = {rel: rec for rel, rec in previous.items() if rel not in files and (folder / rel).exists()}
    return record_model(root, name, {"import": str(source_path)}, "import", {**kept, **files})
