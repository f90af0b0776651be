"""Reference separator B: Spleeter 2stems (vocals, accompaniment) in its own venv, run as a Ray task.

The model folder comes from the model store (params.json + TF checkpoint, Spleeter's own layout);
params.json's model_dir is replaced by the folder's path here, so a store filled on another
machine and copied to the cluster loads from where it is. The task asks for no CPU of its
own: it runs inside the budget of the stage actor that calls it, so two actors on two cores
cannot starve it.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[3]


def spleeter_python(configured: str = "auto") -> Path:
    if configured != "auto":
        path = Path(configured)
    else:
        path = Path(os.environ.get("DEMIX_SPLEETER_PYTHON", REPO_ROOT / ".venv-spleeter" / "bin" / "python"))
    if not path.exists():
        raise FileNotFoundError(f"Spleeter's venv is missing ({path}): run `make spleeter-env`, or point "
                                f"DEMIX_SPLEETER_PYTHON / demix.spleeter_python at a Python with spleeter==2.4.2 and ray")
    return path


class SpleeterSeparator:
    stems = ("vocals", "accompaniment")
    channels = 2

    def __init__(self, model_dir: Path, python: str = "auto"):
        import json

        import ray

        from demix_pipeline.backends.separation.spleeter_worker import separate_files

        self.params_json = str(Path(model_dir) / "params.json")
        if not Path(self.params_json).exists():
            raise FileNotFoundError(f"{model_dir} is not a Spleeter model folder (no params.json)")
        params = json.loads(Path(self.params_json).read_text())
        folder = str(Path(model_dir).resolve())
        if params.get("model_dir") != folder:  # a store filled elsewhere and copied here: point Spleeter at this copy
            params["model_dir"] = folder
            self._params_dir = tempfile.TemporaryDirectory(prefix="demix-spleeter-params-")
            self.params_json = os.path.join(self._params_dir.name, "params.json")
            Path(self.params_json).write_text(json.dumps(params))
        self.rate = int(params["sample_rate"])
        self.name = f"spleeter:{Path(model_dir).name} ({','.join(params['instrument_list'])})"
        runtime_env = {"py_executable": str(spleeter_python(python)),
                       "env_vars": {"PYTHONPATH": str(REPO_ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}}
        self._task = ray.remote(num_cpus=0, runtime_env=runtime_env)(separate_files)
        self._ray = ray

    def separate(self, audio: np.ndarray) -> dict[str, np.ndarray]:
        """audio (2, n) at self.rate -> {stem: mono (n,)} at self.rate."""
        stereo = np.ascontiguousarray(audio.T if audio.ndim == 2 else np.stack([audio, audio], axis=1), dtype=np.float32)
        with tempfile.TemporaryDirectory(prefix="demix-spleeter-") as tmp:
            mixture = os.path.join(tmp, "mixture.npy")
            np.save(mixture, stereo)
            paths = self._ray.get(self._task.remote(self.params_json, mixture, tmp))
            return {stem: np.load(path).mean(axis=1).astype(np.float32)[: stereo.shape[0]] for stem, path in paths.items()}
