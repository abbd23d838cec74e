"""Puts a user's checkpoint, image, instruction, seed and steps into an API-format workflow.

Shared by the headless runner and the tests so that both drive the shipped workflow files
the same way. Nodes are found by type and wiring, not by id, so edited workflows still work.
"""
import copy
import json
from pathlib import Path
from typing import Any, Optional

# Which input of which loader node takes each kind of model file.
MODEL_FILES = {
    "checkpoint": ("IP2PCheckpointLoader", "ckpt_name"),
    "sd_checkpoint": ("CheckpointLoaderSimple", "ckpt_name"),
    "diffusers": ("IP2PDiffusersLoader", "model_path"),
    "unet": ("IP2PUNetLoader", "unet_name"),
    "clip": ("CLIPLoader", "clip_name"),
    "vae": ("VAELoader", "vae_name"),
    "upscale_model": ("UpscaleModelLoader", "model_name"),
}
SEED_INPUTS = {"IP2PSampler": "seed", "KSampler": "seed", "RandomNoise": "noise_seed"}
STEPS_INPUTS = {"IP2PSampler": "steps", "KSampler": "steps", "BasicScheduler": "steps"}
IMAGE_ENCODERS = ("IP2PEncode", "InstructPixToPixConditioning")
PACK_ENCODERS = ("IP2PEncode", "IP2PEncodeText")

Prompt = dict[str, dict[str, Any]]


def load_workflow(path: Path) -> Prompt:
    prompt = json.loads(Path(path).read_text())
    if not isinstance(prompt, dict) or not all(isinstance(n, dict) and "class_type" in n for n in prompt.values()):
        raise ValueError(f"{path} is not an API-format workflow (export it with 'Save (API Format)')")
    return prompt


def with_inputs(prompt: Prompt, *, image: Optional[str] = None, instruction: Optional[str] = None,
                seed: Optional[int] = None, steps: Optional[int] = None, mask: Optional[str] = None,
                resolution: Optional[int] = None, **model_files: Optional[str]) -> Prompt:
    """A copy of `prompt` with the given values set wherever the graph takes them.

    `model_files` names files by kind (the keys of MODEL_FILES): `checkpoint` goes to IP2P
    Checkpoint Loader, `sd_checkpoint` to Load Checkpoint, `unet`, `clip`, `vae`, `diffusers`,
    `upscale_model` to Load Upscale Model.
    """
    unknown = set(model_files) - set(MODEL_FILES)
    if unknown:
        raise TypeError(f"unknown model file kinds {sorted(unknown)}: use {sorted(MODEL_FILES)}")
    out = copy.deepcopy(prompt)
    for node in out.values():
        kind, inputs = node["class_type"], node["inputs"]
        for file_kind, name in model_files.items():
            loader, input_name = MODEL_FILES[file_kind]
            if name is not None and kind == loader:
                inputs[input_name] = name
        if image is not None and kind == "LoadImage":
            inputs["image"] = image
        if mask is not None and kind == "LoadImageMask":
            inputs["image"] = mask
        if resolution is not None and kind in PACK_ENCODERS:
            inputs["resolution"] = resolution
        if instruction is not None and kind == "IP2PEncodeText":
            inputs["instruction"] = instruction
        if seed is not None and kind in SEED_INPUTS:
            inputs[SEED_INPUTS[kind]] = seed
        if steps is not None and kind in STEPS_INPUTS:
            inputs[STEPS_INPUTS[kind]] = steps
    if instruction is not None:
        for node_id in _instruction_text_nodes(out):
            out[node_id]["inputs"]["text"] = instruction
    return out


def _instruction_text_nodes(prompt: Prompt) -> list[str]:
    """Text encoders wired into an image encoder's positive input: those hold the instruction."""
    ids = []
    for node in prompt.values():
        if node["class_type"] in IMAGE_ENCODERS:
            link = node["inputs"].get("positive")
            if isinstance(link, list) and prompt.get(link[0], {}).get("class_type") == "CLIPTextEncode":
                ids.append(link[0])
    return ids
