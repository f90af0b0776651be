"""Reference separator B: Spleeter 2stems (vocals, accompaniment) in its own venv, as a child process.

Spleeter pins tensorflow 2.12 and numpy<2, so it runs in a venv of its own: each separator starts one
long-lived `spleeter_worker serve` process from that venv beside the process that uses it, on the same
machine, and streams raw float32 audio over its pipes (no file, no path handed to another node, no
pickled numpy crossing numpy versions). The backend knows nothing of Ray. The model folder comes from
the model store (params.json + TF checkpoint, Spleeter's own layout); the worker points params.json's
model_dir at the folder where it is, so a store filled on another machine and copied to the cluster
loads from where it is, and the store is never written.
"""
from __future__ import annotations

import json
import os
import select
import subprocess
from pathlib import Path

import numpy as np

from demix_pipeline import row_deadline

REPO_ROOT = Path(__file__).resolve().parents[3]


def spleeter_python(configured: str = "auto") -> Path:
    if configured != "auto":
        path = Path(configured)
    else:
        path = Path(os.environ.get("DEMIX_SPLEETER_PYTHON", REPO_ROOT / ".venv-spleeter" / "bin" / "python"))
    if not path.exists():
        raise FileNotFoundError(f"Spleeter's venv is missing ({path}): run `make spleeter-env`, or point "
                                f"DEMIX_SPLEETER_PYTHON / demix.spleeter_python at a Python with spleeter==2.4.2")
    return path


class SpleeterSeparator:
    stems = ("vocals", "accompaniment")
    channels = 2

    def __init__(self, model_dir: Path, python: str = "auto", start_timeout_s: float = 600.0):
        params_json = Path(model_dir) / "params.json"
        if not params_json.exists():
            raise FileNotFoundError(f"{model_dir} is not a Spleeter model folder (no params.json)")
        params = json.loads(params_json.read_text())
        self.rate = int(params["sample_rate"])
        self.name = f"spleeter:{Path(model_dir).name} ({','.join(params['instrument_list'])})"
        self._command = [str(spleeter_python(python)), "-m", "demix_pipeline.backends.separation.spleeter_worker",
                         "serve", str(Path(model_dir).resolve())]
        self._start_timeout_s = start_timeout_s
        self._start()

    def _start(self) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
        self._proc = subprocess.Popen(self._command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, env=env)
        try:
            self._expect_line(self._start_timeout_s, "loading Spleeter")  # "ready": the model is loaded
        except TimeoutError:
            raise RuntimeError(f"Spleeter's worker did not load its model within {self._start_timeout_s:g} s") from None

    def _expect_line(self, timeout_s: float | None, doing: str) -> dict:
        """The worker's next reply line; past `timeout_s` the worker is killed and RowTimeout raised."""
        if timeout_s is not None and not select.select([self._proc.stdout], [], [], max(0.0, timeout_s))[0]:
            self._proc.kill()
            self._proc.wait()
            raise row_deadline.RowTimeout(f"the row ran past its deadline while {doing} (run.row_deadline_s); "
                                          "Spleeter's worker was stopped")
        line = self._proc.stdout.readline()
        if not line:
            self._proc.wait()
            tail = self._proc.stderr.read().decode(errors="replace").strip().splitlines()[-5:]
            raise RuntimeError(f"Spleeter's worker exited ({self._proc.returncode}): {' | '.join(tail) or 'no message'}")
        reply = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"Spleeter's worker failed: {reply['error']}")
        return reply

    def separate(self, audio: np.ndarray) -> dict[str, np.ndarray]:
        """audio (2, n) at self.rate -> {stem: mono (n,)} at self.rate."""
        stereo = np.ascontiguousarray(audio.T if audio.ndim == 2 else np.stack([audio, audio], axis=1), dtype=np.float32)
        self._proc.stdin.write(json.dumps({"frames": int(stereo.shape[0])}).encode() + b"\n")
        self._proc.stdin.write(stereo.tobytes())
        self._proc.stdin.flush()
        try:
            reply = self._expect_line(row_deadline.remaining(), "separating with Spleeter")
        except row_deadline.RowTimeout:
            self._start()  # a fresh worker for the next row
            raise
        out = {}
        for stem, frames in reply["stems"]:
            data = self._proc.stdout.read(frames * 2 * 4)
            wave = np.frombuffer(data, np.float32).reshape(frames, 2)
            out[stem] = wave.mean(axis=1).astype(np.float32)[: stereo.shape[0]]
        return out

    def close(self) -> None:
        if getattr(self, "_proc", None) and self._proc.poll() is None:
            self._proc.stdin.close()
            try:
                self._proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._proc.kill()

    def __del__(self):
        self.close()
