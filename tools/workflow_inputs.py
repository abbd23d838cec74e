"""Puts a user's checkpoint, image, instruction, seed and steps into an API-format workflow.

Shared by the headless runner and the tests so that both drive the shipped workflow files
the same way. Nodes are found by type and wiring, not by id, so edited workflows still work.
"""
import copy
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional, Union

from .ui_workflow import is_link, run_order

# Which input of which loader node takes each kind of model file.
MODEL_FILES = {
    "checkpoint": ("IP2PCheckpointLoader", "ckpt_name"),
    "sd_checkpoint": ("CheckpointLoaderSimple", "ckpt_name"),
    "diffusers": ("IP2PDiffusersLoader", "model_path"),
    "unet": ("IP2PUNetLoader", "unet_name"),
    "clip": ("CLIPLoader", "clip_name"),
    "vae": ("VAELoader", "vae_name"),
    "upscale_model": ("UpscaleModelLoader", "model_name"),
    "lora": ("LoraLoader", "lora_name"),
    "controlnet": ("ControlNetLoader", "control_net_name"),
}
SEED_INPUTS = {"IP2PSampler": "seed", "KSampler": "seed", "RandomNoise": "noise_seed"}
STEPS_INPUTS = {"IP2PSampler": "steps", "KSampler": "steps", "BasicScheduler": "steps", "IP2PInvert": "steps"}
IMAGE_ENCODERS = ("IP2PEncode", "InstructPixToPixConditioning")
PACK_ENCODERS = ("IP2PEncode", "IP2PEncodeText")

Prompt = dict[str, dict[str, Any]]


def load_workflow(path: Path) -> Prompt:
    prompt = json.loads(Path(path).read_text())
    if not isinstance(prompt, dict) or not all(isinstance(n, dict) and "class_type" in n for n in prompt.values()):
        raise ValueError(f"{path} is not an API-format workflow (export it with 'Save (API Format)')")
    return prompt


def with_inputs(prompt: Prompt, *, image: Optional[str] = None,
                instruction: Union[str, Sequence[str], None] = None, seed: Optional[int] = None,
                steps: Optional[int] = None, mask: Optional[str] = None, resolution: Optional[int] = None,
                **model_files: Optional[str]) -> Prompt:
    """A copy of `prompt` with the given values set wherever the graph takes them.

    `instruction` is one text per instruction the workflow holds, in the order its edits run (a
    chain of two different edits takes two); a single string is one. `model_files` names files
    by kind (the keys of MODEL_FILES): `checkpoint` goes to IP2P Checkpoint Loader,
    `sd_checkpoint` to Load Checkpoint, `unet`, `clip`, `vae`, `diffusers`, `upscale_model` to
    Load Upscale Model, `lora` to Load LoRA, `controlnet` to Load ControlNet Model.
    """
    unknown = set(model_files) - set(MODEL_FILES)
    if unknown:
        raise TypeError(f"unknown model file kinds {sorted(unknown)}: use {sorted(MODEL_FILES)}")
    out = copy.deepcopy(prompt)
    if instruction is not None:
        _set_instructions(out, [instruction] if isinstance(instruction, str) else list(instruction))
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
        if seed is not None and kind in SEED_INPUTS:
            inputs[SEED_INPUTS[kind]] = seed
        if steps is not None and kind in STEPS_INPUTS:
            inputs[STEPS_INPUTS[kind]] = steps
    return out


def instructions_of(prompt: Prompt) -> list[str]:
    """The workflow's instructions, one per edit that holds its own text, in the order they run."""
    texts = [prompt[node_id]["inputs"][name] for node_id, name in _instruction_slots(prompt)]
    return list(dict.fromkeys(text for text in texts if isinstance(text, str)))


def seeds_of(prompt: Prompt) -> list[int]:
    """The seeds the workflow's samplers take, in node order."""
    return [node["inputs"][SEED_INPUTS[node["class_type"]]] for node in prompt.values()
            if node["class_type"] in SEED_INPUTS and not is_link(node["inputs"].get(SEED_INPUTS[node["class_type"]]))]


class InstructionCountError(ValueError):
    """The workflow holds a different number of instructions than were given."""


def _set_instructions(prompt: Prompt, instructions: list[str]) -> None:
    """Edits that hold the same text are one instruction (edit_then_upscale edits twice with one);
    different texts (chain_edit) take one given instruction each, in the order they run."""
    groups: dict[str, list[tuple[str, str]]] = {}  # by the current value (a text, or a link to one)
    for node_id, name in _instruction_slots(prompt):
        groups.setdefault(json.dumps(prompt[node_id]["inputs"][name]), []).append((node_id, name))
    if len(instructions) != len(groups):
        where = "; ".join(f"{json.loads(value)!r} (node {', '.join(node_id for node_id, _ in slots)})"
                          for value, slots in groups.items())
        raise InstructionCountError(
            f"the workflow holds {len(groups)} instruction(s) ({where or 'no instruction input found'}) but "
            f"got {len(instructions)}: give one per instruction, in the order the edits run")
    for slots, text in zip(groups.values(), instructions):
        for node_id, name in slots:
            prompt[node_id]["inputs"][name] = text


def _instruction_slots(prompt: Prompt) -> list[tuple[str, str]]:
    """(node id, input name) of every instruction, in run order: IP2P Encode (Instruction)'s own
    input, and CLIP Text Encode nodes wired into an image encoder's positive input. An edit fed
    by another edit's result comes after it: the order follows the node that takes the image."""
    position = {node_id: i for i, node_id in enumerate(run_order(prompt))}
    edits = {}  # slot -> the node that takes the image
    for node_id, node in prompt.items():
        if node["class_type"] == "IP2PEncodeText":
            edits.setdefault((node_id, "instruction"), node_id)
        elif node["class_type"] in IMAGE_ENCODERS:
            link = node["inputs"].get("positive")
            if is_link(link) and prompt.get(link[0], {}).get("class_type") == "CLIPTextEncode":
                edits.setdefault((link[0], "text"), node_id)
    return sorted(edits, key=lambda slot: position[edits[slot]])
