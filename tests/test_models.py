"""Model store resolution: local folders only, clear errors naming the model and the fix."""
from __future__ import annotations

import pytest

from demix_pipeline.models import ModelNotFoundError, resolve_model


def test_resolves_a_present_model(tmp_path):
    (tmp_path / "htdemucs_dnr").mkdir()
    (tmp_path / "htdemucs_dnr" / "model.th").write_bytes(b"x")
    assert resolve_model("htdemucs_dnr", tmp_path, ("model.th",)) == tmp_path / "htdemucs_dnr"


def test_env_variable_is_the_default_store(tmp_path, monkeypatch):
    (tmp_path / "m").mkdir()
    monkeypatch.setenv("DEMIX_MODELS", str(tmp_path))
    assert resolve_model("m") == tmp_path / "m"


def test_missing_store_model_and_file_are_clear(tmp_path, monkeypatch):
    monkeypatch.delenv("DEMIX_MODELS", raising=False)
    with pytest.raises(ModelNotFoundError, match="no model store is configured: set DEMIX_MODELS"):
        resolve_model("yolo11n")
    with pytest.raises(ModelNotFoundError, match=r"model 'yolo11n' is not in the model store .*demix models fetch yolo11n"):
        resolve_model("yolo11n", tmp_path)
    (tmp_path / "yolo11n").mkdir()
    with pytest.raises(ModelNotFoundError, match="lacks weights.pt"):
        resolve_model("yolo11n", tmp_path, ("weights.pt",))


def test_telemetry_and_hub_lookups_are_off_by_default():
    import os

    import demix_pipeline  # noqa: F401

    for name, value in {"HF_HUB_OFFLINE": "1", "YOLO_OFFLINE": "1", "ORT_DISABLE_TELEMETRY": "1",
                        "PYANNOTE_METRICS_ENABLED": "0", "RAY_USAGE_STATS_ENABLED": "0"}.items():
        assert os.environ.get(name) == value, name


# ----------------------------------------------------------------------------------------------
# fetch / verify / import against a real HTTP server on 127.0.0.1

import hashlib  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import tarfile  # noqa: E402
import socket  # noqa: E402
import threading  # noqa: E402
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer  # noqa: E402

import yaml  # noqa: E402

from demix_pipeline.cli import main  # noqa: E402
from demix_pipeline.model_fetch import ChecksumMismatch, fetch_model  # noqa: E402
from demix_pipeline.models import read_store_lock  # noqa: E402


class FileServer:
    """Serves bytes by path with Range support; can cut a response after some bytes, once per path."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.cut_after: dict[str, int] = {}
        self.requests: list[tuple[str, str | None, str | None]] = []  # (path, Range, Authorization)
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                server.requests.append((self.path, self.headers.get("Range"), self.headers.get("Authorization")))
                body = server.files.get(self.path)
                if body is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                start = 0
                if self.headers.get("Range"):
                    start = int(self.headers["Range"].split("=")[1].split("-")[0])
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                cut = server.cut_after.pop(self.path, None)
                if cut is not None:  # send part of the body, then drop the connection
                    self.wfile.write(body[start:start + cut])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_WR)  # EOF before Content-Length bytes
                    return
                self.wfile.write(body[start:])

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    srv = FileServer()
    yield srv
    srv.close()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def weights(n: int, seed: int = 0) -> bytes:
    import numpy as np

    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


def write_lock(path, models: dict) -> str:
    path.write_text(yaml.safe_dump({"version": 1, "models": models}))
    return str(path)


def test_fetch_downloads_resumes_a_cut_connection_and_records_sha256(tmp_path, server):
    body = weights(3_000_000)
    server.files["/yolo11n.pt"] = body
    server.cut_after["/yolo11n.pt"] = 1_000_000
    entry = {"source": {"url": f"{server.url}/yolo11n.pt"}, "files": {"model.pt": {"sha256": sha(body)}}}
    record = fetch_model(tmp_path, "yolo11n", entry, progress=False, backoff_s=0.01)
    assert (tmp_path / "yolo11n" / "model.pt").read_bytes() == body
    assert not (tmp_path / "yolo11n" / "model.pt.part").exists()
    ranges = [r for _, r, _ in server.requests]
    assert ranges[0] is None and len(ranges) == 2, ranges
    resumed_at = int(ranges[1].split("=")[1].rstrip("-"))  # resumed near where the cut left it
    assert 900_000 <= resumed_at <= 1_000_000, ranges
    assert record["files"]["model.pt"]["sha256"] == sha(body)
    assert read_store_lock(tmp_path)["yolo11n"]["origin"] == "fetch"
    server.requests.clear()  # a second fetch finds the file whole and downloads nothing
    fetch_model(tmp_path, "yolo11n", entry, progress=False)
    assert server.requests == []


def test_fetch_resumes_a_killed_fetch_from_its_part_file(tmp_path, server):
    body = weights(500_000, seed=1)
    server.files["/m.bin"] = body
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "model.pt.part").write_bytes(body[:123_456])  # what a killed fetch left behind
    fetch_model(tmp_path, "m", {"source": {"url": f"{server.url}/m.bin"}, "files": {"model.pt": {"sha256": sha(body)}}},
                progress=False)
    assert server.requests[0][1] == "bytes=123456-"
    assert (tmp_path / "m" / "model.pt").read_bytes() == body


def test_fetch_catches_a_checksum_mismatch_and_keeps_nothing(tmp_path, server, monkeypatch):
    server.files["/m.bin"] = b"tampered weights"
    entry = {"source": {"url": f"{server.url}/m.bin"}, "files": {"model.pt": {"sha256": sha(b"the real weights")}}}
    with pytest.raises(ChecksumMismatch, match="differs from models.lock"):
        fetch_model(tmp_path, "m", entry, progress=False)
    assert not (tmp_path / "m" / "model.pt").exists() and not (tmp_path / "m" / "model.pt.part").exists()
    assert "m" not in read_store_lock(tmp_path)
    monkeypatch.setenv("DEMIX_MODELS_LOCK", write_lock(tmp_path / "lock.yaml", {"m": entry}))
    assert main(["models", "fetch", "m", "--models-dir", str(tmp_path / "store"), "--quiet"]) == 1


def test_fetch_from_a_hub_lists_files_resolves_the_revision_and_sends_the_token(tmp_path, server, monkeypatch):
    files = {"config.json": b'{"model_type": "tiny"}', "weights/model.safetensors": weights(200_000, 2)}
    commit = "0123456789abcdef0123456789abcdef01234567"
    server.files["/api/models/org/tiny/revision/main"] = json.dumps(
        {"sha": commit, "siblings": [{"rfilename": f} for f in files]}).encode()
    for rel, data in files.items():
        server.files[f"/org/tiny/resolve/{commit}/{rel}"] = data
    monkeypatch.setenv("DEMIX_HF_ENDPOINT", server.url)
    monkeypatch.setenv("HF_TOKEN", "hf_test_token")
    record = fetch_model(tmp_path, "video_llm", {"source": {"hub": "org/tiny", "revision": "main"}, "files": None},
                         progress=False)
    for rel, data in files.items():
        assert (tmp_path / "video_llm" / rel).read_bytes() == data
        assert record["files"][rel]["sha256"] == sha(data)
    assert record["source"]["resolved_revision"] == commit
    assert all(auth == "Bearer hf_test_token" for _, _, auth in server.requests)


def test_fetch_unpacks_an_archive(tmp_path, server):
    buffer = io.BytesIO()
    members = {"checkpoint": b"model_checkpoint_path: \"model\"\n", "model.index": weights(1000, 3)}
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    server.files["/2stems.tar.gz"] = buffer.getvalue()
    record = fetch_model(tmp_path, "spleeter_2stems", {"source": {"url": f"{server.url}/2stems.tar.gz", "archive": "tar.gz"},
                                                       "files": {n: {"sha256": None} for n in members}}, progress=False)
    assert sorted(record["files"]) == sorted(members)
    assert record["source"]["sha256"] == sha(buffer.getvalue())
    assert not (tmp_path / "spleeter_2stems" / ".download").exists()
    server.requests.clear()  # whole and unchanged: a second fetch downloads nothing
    again = fetch_model(tmp_path, "spleeter_2stems", {"source": {"url": f"{server.url}/2stems.tar.gz", "archive": "tar.gz"},
                                                      "files": {n: {"sha256": None} for n in members}}, progress=False)
    assert server.requests == [] and again["files"] == record["files"]


def test_verify_detects_a_changed_file_and_a_run_fails_before_any_work(tmp_path, media, monkeypatch, capsys):
    store = tmp_path / "store"
    ckpt = tmp_path / "best.onnx"
    ckpt.write_bytes(weights(10_000, 4))
    assert main(["models", "import", "active_speaker", str(ckpt), "--models-dir", str(store)]) == 0
    assert main(["models", "verify", "--models-dir", str(store)]) == 0
    stored = store / "active_speaker" / "model.onnx"  # named as the stage expects it
    data = bytearray(stored.read_bytes())
    data[5000] ^= 0xFF  # same size, one byte flipped
    stored.write_bytes(bytes(data))
    capsys.readouterr()
    assert main(["models", "verify", "--models-dir", str(store)]) == 1
    assert "model.onnx: sha256" in capsys.readouterr().out
    out = tmp_path / "run"
    clip = media / "multi_person_dialogue" / "pyscenedetect_bbc_documentary_issue195.mp4"
    rc = main(["run", "--input", str(clip), "--out", str(out), "--set", f"run.models_dir={store}",
               "--set", "voiceover.asd=reference"])
    err = capsys.readouterr().err
    assert rc == 2 and "model 'active_speaker' (voiceover.asd_model)" in err and "corrupt" in err
    assert "demix models fetch active_speaker" in err
    assert not out.exists()  # failed at start: not even ingest ran


def test_import_records_a_hash_for_a_file_and_a_folder(tmp_path, monkeypatch, capsys):
    store = tmp_path / "store"
    folder = tmp_path / "my_diarizer"
    (folder / "segmentation").mkdir(parents=True)
    (folder / "config.yaml").write_text("pipeline: {}\n")
    (folder / "segmentation" / "model.ckpt").write_bytes(weights(5000, 5))
    assert main(["models", "import", "pyannote_diarization", str(folder), "--models-dir", str(store)]) == 0
    rec = read_store_lock(store)["pyannote_diarization"]
    assert rec["origin"] == "import" and rec["source"]["import"] == str(folder.resolve())
    assert rec["files"]["segmentation/model.ckpt"]["sha256"] == sha((folder / "segmentation" / "model.ckpt").read_bytes())
    assert rec["files"]["config.yaml"]["size"] == len("pipeline: {}\n")
    capsys.readouterr()
    assert main(["models", "list", "--models-dir", str(store), "--json",
                 "--set", "voiceover.diarizer=reference"]) == 0
    rows = {r["model"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["pyannote_diarization"]["selected"] and rows["pyannote_diarization"]["verified"]
    assert not rows["yolo11n"]["present"] and not rows["yolo11n"]["selected"]
    assert set(rows) >= {"audiobox-aesthetics", "htdemucs_dnr", "spleeter_2stems", "yolo11n", "pyannote_diarization",
                         "active_speaker", "video_llm"}


def test_repo_lock_names_the_models_the_stages_use():
    from demix_pipeline.config import load_config
    from demix_pipeline.models import read_repo_lock

    lock = read_repo_lock()
    cfg = load_config(None, ["audio_quality.backend=reference", "demix.separator_a=reference",
                             "demix.separator_b=reference", "voiceover.person_detector=reference",
                             "voiceover.diarizer=reference", "voiceover.asd=reference", "caption.backend=reference"])
    from demix_pipeline.stages import IMPLEMENTED, stage_class

    needed = {name: key for s in IMPLEMENTED for name, key, _ in stage_class(s).required_models(cfg)}
    assert len(needed) == 7
    for name, key in needed.items():
        assert lock[name]["config"] == key
        assert lock[name]["licence"] and lock[name]["for"]


def test_verify_works_on_a_read_only_store(tmp_path, monkeypatch, capsys):
    import demix_pipeline.models as models

    store = tmp_path / "store"
    (tmp_path / "model.pt").write_bytes(weights(2000, 6))
    assert main(["models", "import", "yolo11n", str(tmp_path / "model.pt"), "--models-dir", str(store)]) == 0

    def read_only(*_):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(models, "write_store_lock", read_only)  # a volume mounted :ro
    assert main(["models", "verify", "--models-dir", str(store)]) == 0
    (store / "yolo11n" / "model.pt").write_bytes(weights(2000, 7))
    assert main(["models", "verify", "--models-dir", str(store)]) == 1


def test_weights_id_names_the_store_model_and_the_sha256_of_its_file(tmp_path):
    import hashlib

    from demix_pipeline.models import import_model, weights_id

    weights = tmp_path / "w.bin"
    weights.write_bytes(b"real weights")
    digest = hashlib.sha256(b"real weights").hexdigest()
    store = tmp_path / "store"
    assert weights_id("lr_asd", ("w.bin",), store) == "lr_asd (not in the model store)"
    (store / "lr_asd").mkdir(parents=True)
    (store / "lr_asd" / "w.bin").write_bytes(b"real weights")
    assert weights_id("lr_asd", ("w.bin",), store) == f"lr_asd sha256:{digest[:12]}"  # hashed: nothing recorded
    import_model(store, "lr_asd", weights, as_name="w.bin")
    assert weights_id("lr_asd", ("w.bin",), store) == f"lr_asd sha256:{digest[:12]}"  # from the store's record
    (store / "lr_asd" / "w.bin").write_bytes(b"other weights!")  # changed behind the record's back: hashed again
    assert weights_id("lr_asd", ("w.bin",), store) == f"lr_asd sha256:{hashlib.sha256(b'other weights!').hexdigest()[:12]}"
