"""The model store: a local folder of weights, one sub-folder per model, never downloaded at run time.

`DEMIX_MODELS` (or config `run.models_dir`) points at it. Reference backends call
`resolve_model(name)` in their setup(); a missing model is a ModelNotFoundError that names the
model and how to provide it.
"""
from __future__ import annotations

import os
from pathlib import Path


class ModelNotFoundError(FileNotFoundError):
    """A reference model is not in the model store."""


def models_dir(configured: str | os.PathLike | None = None) -> Path | None:
    value = configured or os.environ.get("DEMIX_MODELS")
    return Path(value).expanduser() if value else None


def resolve_model(name: str, configured_dir: str | os.PathLike | None = None, required_files: tuple[str, ...] = ()) -> Path:
    """Local folder of model `name`, checked to exist and to hold `required_files`."""
    root = models_dir(configured_dir)
    how = (f"Fill the store on a machine with internet access (`demix models fetch {name}`), or copy the "
           f"model's files into <store>/{name}/ yourself, then point DEMIX_MODELS (or run.models_dir) at the store.")
    if root is None:
        raise ModelNotFoundError(f"model '{name}' is needed but no model store is configured: set DEMIX_MODELS "
                                 f"or run.models_dir. {how}")
    folder = root / name
    if not folder.is_dir():
        raise ModelNotFoundError(f"model '{name}' is not in the model store {root} (no folder {folder}). {how}")
    missing = [f for f in required_files if not (folder / f).exists()]
    if missing:
        raise ModelNotFoundError(f"model '{name}' in {folder} lacks {', '.join(missing)}. {how}")
    return folder
