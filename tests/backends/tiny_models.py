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


def tiny_tokenizer(special: list[str]):
    """A byte-level BPE tokenizer trained offline on a few sentences, with the given special tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<unk>", "<pad>", "<|endoftext|>", *special],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(["Describe this person's appearance in one short sentence.",
                                   "Describe the overall scene of this video.", "a person in a red coat walks"] * 20,
                                  trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="<unk>", pad_token="<pad>",
                                   eos_token="<|endoftext|>")


def _chat_template(image: str, video: str) -> str:
    return ("{% for message in messages %}<|im_start|>{{ message['role'] }}\n{% for content in message['content'] %}"
            "{% if content['type'] == 'image' %}" + image + "{% elif content['type'] == 'video' %}" + video +
            "{% else %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endfor %}"
            "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def _text_config(tokenizer) -> dict:
    return dict(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
                bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id)


def build_tiny_llava_onevision(folder: Path) -> None:
    """Random LLaVA-OneVision (Qwen2 text, SigLIP vision) with its processor, saved with save_pretrained."""
    from demix_pipeline.backends.torch_compat import ensure_torchvision_importable

    ensure_torchvision_importable()
    import torch
    from transformers import (LlavaOnevisionConfig, LlavaOnevisionForConditionalGeneration,
                              LlavaOnevisionImageProcessor, LlavaOnevisionProcessor, LlavaOnevisionVideoProcessor,
                              Qwen2Config, SiglipVisionConfig)

    torch.manual_seed(0)
    tokenizer = tiny_tokenizer(["<image>", "<video>", "<|im_start|>", "<|im_end|>"])
    vision = SiglipVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                                image_size=32, patch_size=8)
    config = LlavaOnevisionConfig(text_config=Qwen2Config(**_text_config(tokenizer)), vision_config=vision,
                                  image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
                                  video_token_index=tokenizer.convert_tokens_to_ids("<video>"),
                                  vision_feature_layer=-1, image_grid_pinpoints=[[32, 32]])
    processor = LlavaOnevisionProcessor(
        image_processor=LlavaOnevisionImageProcessor(size={"height": 32, "width": 32}, image_grid_pinpoints=[[32, 32]]),
        video_processor=LlavaOnevisionVideoProcessor(size={"height": 32, "width": 32}), tokenizer=tokenizer,
        chat_template=_chat_template("<image>", "<video>"), num_image_tokens=16, vision_feature_select_strategy="full")
    LlavaOnevisionForConditionalGeneration(config).save_pretrained(folder)
    processor.save_pretrained(folder)


def build_tiny_qwen2_vl(folder: Path) -> None:
    """Random Qwen2-VL with its processor, saved with save_pretrained."""
    from demix_pipeline.backends.torch_compat import ensure_torchvision_importable

    ensure_torchvision_importable()
    import torch
    from transformers import (Qwen2VLConfig, Qwen2VLForConditionalGeneration, Qwen2VLImageProcessor, Qwen2VLProcessor,
                              Qwen2VLVideoProcessor)

    torch.manual_seed(0)
    special = ["<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]
    tokenizer = tiny_tokenizer(special)
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in special}
    text = dict(_text_config(tokenizer), rope_scaling={"type": "mrope", "mrope_section": [2, 1, 1]})
    config = Qwen2VLConfig(
        text_config=text, vision_config=dict(depth=2, embed_dim=32, hidden_size=32, num_heads=4, patch_size=8,
                                             spatial_merge_size=2, temporal_patch_size=2, in_channels=3, mlp_ratio=2),
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
        bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id)
    sizes = dict(patch_size=8, merge_size=2, temporal_patch_size=2, min_pixels=32 * 32, max_pixels=64 * 64)
    processor = Qwen2VLProcessor(
        image_processor=Qwen2VLImageProcessor(**sizes), video_processor=Qwen2VLVideoProcessor(**sizes),
        tokenizer=tokenizer, chat_template=_chat_template("<|vision_start|><|image_pad|><|vision_end|>",
                                                          "<|vision_start|><|video_pad|><|vision_end|>"))
    Qwen2VLForConditionalGeneration(config).save_pretrained(folder)
    processor.save_pretrained(folder)
