"""`demix models fetch`: fills the model store on a connected machine, from the sources in models.lock.

Sources: `url` (one file, or an archive unpacked into the model's folder) and `hub` (a Hugging Face
repository at a revision; the file list comes from the hub's API when models.lock lists none, and
the revision is resolved to a commit, recorded in the store). Each file downloads to `<file>.part`
and resumes with an HTTP Range request after a cut connection or a killed fetch; a file whose
sha256 differs from models.lock's is deleted and reported. `DEMIX_HF_ENDPOINT` (or `HF_ENDPOINT`)
replaces https://huggingface.co; `HF_TOKEN` is sent for gated repositories.
"""
from __future__ import annotations

import os
import tarfile
import time
import zipfile
from pathlib import Path
from urllib.parse import quote

from demix_pipeline.media.hashing import file_sha256
from demix_pipeline.models import file_record, read_store_lock, record_model

CHUNK = 1 << 16  # small reads: a cut connection loses at most one


class FetchError(RuntimeError):
    """A model could not be downloaded (network, HTTP status, or checksum)."""


class ChecksumMismatch(FetchError):
    """A downloaded file's sha256 differs from the one in models.lock."""


def hub_endpoint() -> str:
    return (os.environ.get("DEMIX_HF_ENDPOINT") or os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")


def _headers(url: str) -> dict[str, str]:
    token = os.environ.get("HF_TOKEN")
    return {"Authorization": f"Bearer {token}"} if token and url.startswith(hub_endpoint()) else {}


def download(url: str, dest: Path, sha256: str | None = None, retries: int = 5, backoff_s: float = 1.0,
             progress: bool = True) -> str:
    """Download `url` to `dest` (resuming `dest.part`), check `sha256`, return the file's sha256."""
    import requests
    from tqdm import tqdm

    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    total = None
    for attempt in range(retries + 1):
        have = part.stat().st_size if part.exists() else 0
        headers = {**_headers(url), **({"Range": f"bytes={have}-"} if have else {})}
        try:
            with requests.get(url, headers=headers, stream=True, timeout=(15, 60)) as resp:
                if resp.status_code == 416 and have:  # nothing left to send: the part is whole
                    break
                if resp.status_code in (401, 403):
                    raise FetchError(f"{url}: HTTP {resp.status_code}; a gated or private repository needs HF_TOKEN "
                                     f"(and its licence accepted on the hub)")
                if resp.status_code not in (200, 206):
                    raise FetchError(f"{url}: HTTP {resp.status_code}")
                if resp.status_code == 200:  # a fresh start (or the server ignores Range)
                    have = 0
                    total = int(resp.headers["Content-Length"]) if "Content-Length" in resp.headers else None
                else:
                    total = int(resp.headers.get("Content-Range", "*/0").rsplit("/", 1)[1] or 0) or None
                with open(part, "ab" if have else "wb") as handle, \
                        tqdm(total=total, initial=have, unit="B", unit_scale=True, desc=dest.name,
                             disable=not progress or None, leave=False) as bar:
                    for block in resp.iter_content(CHUNK):
                        handle.write(block)
                        bar.update(len(block))
            size = part.stat().st_size
            if total is not None and size < total:
                raise ConnectionError(f"connection closed at {size} of {total} bytes")
            break
        except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError,
                ConnectionError) as exc:
            if attempt == retries:
                raise FetchError(f"{url}: {type(exc).__name__} after {retries + 1} attempts; re-run `demix models "
                                 f"fetch` to resume from {part.stat().st_size if part.exists() else 0} bytes") from exc
            time.sleep(backoff_s * 2 ** attempt)
    digest = file_sha256(part)
    if sha256 and digest != sha256:
        part.unlink()
        raise ChecksumMismatch(f"{url}: sha256 {digest} differs from models.lock's {sha256}; the partial file was "
                               f"deleted (a changed upstream file or a corrupted transfer)")
    os.replace(part, dest)
    return digest


def _hub_files(repo: str, revision: str) -> tuple[str, list[str]]:
    """(commit sha, file names) of a hub repository at a revision."""
    import requests

    url = f"{hub_endpoint()}/api/models/{repo}/revision/{quote(revision, safe='')}"
    resp = requests.get(url, headers=_headers(url), timeout=30)
    if resp.status_code in (401, 403):
        raise FetchError(f"{url}: HTTP {resp.status_code}; a gated repository needs HF_TOKEN and its licence accepted")
    if resp.status_code != 200:
        raise FetchError(f"{url}: HTTP {resp.status_code}")
    info = resp.json()
    return info.get("sha") or revision, sorted(s["rfilename"] for s in info.get("siblings", []))


def _unpack(archive: Path, folder: Path, kind: str) -> list[str]:
    if kind in ("tar.gz", "tgz", "tar"):
        with tarfile.open(archive) as tar:
            tar.extractall(folder, filter="data")
            names = [m.name for m in tar.getmembers() if m.isfile()]
    elif kind == "zip":
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(folder)
            names = [n for n in zf.namelist() if not n.endswith("/")]
    else:
        raise FetchError(f"unknown archive kind {kind!r} (tar.gz, tar, zip)")
    return sorted(names)


def fetch_model(root: Path, name: str, entry: dict, progress: bool = True, retries: int = 5,
                backoff_s: float = 1.0) -> dict:
    """Download one model of models.lock into <root>/<name>/ and record every file's sha256."""
    source = dict(entry["source"])
    folder = root / name
    files_spec = entry.get("files") or {}
    pinned = {rel: (spec or {}).get("sha256") for rel, spec in files_spec.items()} if isinstance(files_spec, dict) else {}
    recorded: dict[str, dict] = {}
    old = read_store_lock(root).get(name, {}).get("files", {})

    def up_to_date(rel: str) -> bool:
        path = folder / rel
        rec = old.get(rel)
        return (path.is_file() and rec is not None and path.stat().st_size == rec["size"]
                and (pinned.get(rel) in (None, rec["sha256"])) and path.stat().st_mtime_ns == rec.get("mtime_ns"))

    kw = {"retries": retries, "backoff_s": backoff_s, "progress": progress}
    if "url" in source:
        archive = source.get("archive")
        if archive and pinned and all(up_to_date(rel) for rel in pinned):
            recorded = {rel: old[rel] for rel in old if (folder / rel).is_file()}
            source["sha256"] = read_store_lock(root)[name]["source"].get("sha256")
        elif archive:
            target = folder / ".download" / Path(source["url"]).name
            digest = download(source["url"], target, source.get("sha256"), **kw)
            source["sha256"] = digest
            for rel in _unpack(target, folder, archive):
                recorded[rel] = file_record(folder / rel, pinned.get(rel))
            target.unlink()
            target.parent.rmdir()
        else:
            if len(pinned) != 1:
                raise FetchError(f"model {name}: a `url` source without `archive` needs exactly one entry in files")
            rel = next(iter(pinned))
            if up_to_date(rel):
                recorded[rel] = old[rel]
            else:
                download(source["url"], folder / rel, pinned[rel], **kw)
                recorded[rel] = file_record(folder / rel)
    elif "hub" in source:
        revision = source.get("revision", "main")
        commit, listed = _hub_files(source["hub"], revision)
        names = sorted(pinned) if pinned else listed
        missing = sorted(set(names) - set(listed))
        if missing:
            raise FetchError(f"model {name}: {source['hub']}@{revision} has no {', '.join(missing)}")
        source["resolved_revision"] = commit
        for rel in names:
            if up_to_date(rel):
                recorded[rel] = old[rel]
                continue
            url = f"{hub_endpoint()}/{source['hub']}/resolve/{commit}/{quote(rel)}"
            download(url, folder / rel, pinned.get(rel), **kw)
            recorded[rel] = file_record(folder / rel)
    elif "import" in source:
        raise FetchError(f"model {name} has no public download: {source['import']}. Provide it with "
                         f"`demix models import {name} PATH`")
    else:
        raise FetchError(f"model {name}: unknown source {source}")
    for rel, rec in recorded.items():
        if pinned.get(rel) and rec["sha256"] != pinned[rel]:
            raise ChecksumMismatch(f"model {name}: {rel} sha256 {rec['sha256']} differs from models.lock's {pinned[rel]}")
    return record_model(root, name, source, "fetch", recorded)
