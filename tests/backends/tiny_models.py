"""Tiny random reference models in each library's own format, for plumbing tests (never quality)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from demix_pipeline.backends.asd.base import CROP


def build_tiny_yolo(path: Path) -> None:
    """A YOLO11n built from its .yaml (random weights), saved as an ultralytics checkpoint."""
    from demix_pipeline.backends.torch_compat import ensure_torchvision_importable

    ensure_torchvision_importable()
    from ultralytics import YOLO

    path.parent.mkdir(parents=True, exist_ok=True)
    YOLO("yolo11n.yaml").save(str(path))


def build_tiny_pyannote(folder: Path) -> None:
    """A pyannote SpeakerDiarization folder: random PyanNet + XVector checkpoints, a random PLDA, config.yaml."""
    from demix_pipeline.backends.torch_compat import ensure_torchvision_importable

    ensure_torchvision_importable()
    import lightning
    import torch
    import yaml
    from pyannote.audio import __version__
    from pyannote.audio.core.task import Problem, Resolution, Specifications
    from pyannote.audio.models.embedding import XVectorMFCC
    from pyannote.audio.models.segmentation import PyanNet

    def save(model, path):
        checkpoint = {"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams),
                      "pytorch-lightning_version": lightning.__version__, "epoch": 0, "global_step": 0}
        model.on_save_checkpoint(checkpoint)
        torch.save(checkpoint, path)

    folder.mkdir(parents=True)
    torch.manual_seed(0)
    segmentation = PyanNet(sincnet={"stride": 10}, lstm={"hidden_size": 16, "num_layers": 1},
                           linear={"hidden_size": 16, "num_layers": 1})
    segmentation.specifications = Specifications(
        problem=Problem.MONO_LABEL_CLASSIFICATION, resolution=Resolution.FRAME, duration=5.0,
        classes=["speaker#1", "speaker#2", "speaker#3"], powerset_max_classes=2, permutation_invariant=True)
    segmentation.build()
    save(segmentation, folder / "segmentation.ckpt")
    embedding = XVectorMFCC(dimension=32)
    embedding.specifications = Specifications(problem=Problem.REPRESENTATION, resolution=Resolution.CHUNK, duration=3.0)
    embedding.build()
    save(embedding, folder / "embedding.ckpt")
    rng = np.random.default_rng(0)
    (folder / "plda").mkdir()
    np.savez(folder / "plda" / "xvec_transform.npz", mean1=rng.normal(size=32), mean2=rng.normal(size=16),
             lda=rng.normal(size=(32, 16)))
    np.savez(folder / "plda" / "plda.npz", mu=rng.normal(size=16), tr=rng.normal(size=(16, 16)) + 4 * np.eye(16),
             psi=rng.uniform(0.5, 2.0, size=16))
    (folder / "config.yaml").write_text(yaml.safe_dump({
        "version": __version__,
        "pipeline": {"name": "pyannote.audio.pipelines.SpeakerDiarization",
                     "params": {"segmentation": "segmentation.ckpt", "embedding": "embedding.ckpt", "plda": "plda",
                                "clustering": "AgglomerativeClustering", "embedding_batch_size": 8,
                                "segmentation_batch_size": 8}},
        "params": {"segmentation": {"min_duration_off": 0.0},
                   "clustering": {"method": "centroid", "min_cluster_size": 2, "threshold": 0.7}},
    }))


def contract_model(path, input_names=("video", "audio")):
    """logit[t] = mean(video[t]) / 255 - 0.5 + mean(audio[4t:4t+4]) * 0: honours contract v1's shapes."""
    import onnx
    from onnx import TensorProto, helper

    video, audio = input_names
    nodes = [
        helper.make_node("ReduceMean", [video, "axes_hw"], ["frame_mean"], keepdims=0),
        helper.make_node("Div", ["frame_mean", "c255"], ["scaled"]),
        helper.make_node("Sub", ["scaled", "half"], ["video_logit"]),
        helper.make_node("Reshape", [audio, "shape_t4x13"], ["audio_frames"]),
        helper.make_node("ReduceMean", ["audio_frames", "axes_a"], ["audio_mean"], keepdims=0),
        helper.make_node("Mul", ["audio_mean", "zero"], ["audio_term"]),
        helper.make_node("Add", ["video_logit", "audio_term"], ["scores"]),
    ]
    inits = [helper.make_tensor("axes_hw", TensorProto.INT64, [2], [2, 3]),
             helper.make_tensor("axes_a", TensorProto.INT64, [1], [2]),
             helper.make_tensor("shape_t4x13", TensorProto.INT64, [3], [1, -1, 52]),
             helper.make_tensor("c255", TensorProto.FLOAT, [], [255.0]),
             helper.make_tensor("half", TensorProto.FLOAT, [], [0.5]),
             helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0])]
    graph = helper.make_graph(
        nodes, "asd", [helper.make_tensor_value_info(video, TensorProto.FLOAT, [1, "T", CROP, CROP]),
                       helper.make_tensor_value_info(audio, TensorProto.FLOAT, [1, "T4", 13])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, "T"])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    onnx.save(model, path)
