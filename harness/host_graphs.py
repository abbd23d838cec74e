"""API-format graphs the host tests queue, and readers for what they save."""
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from tools.comfy_host import HostError


def encoded(ckpt: str, image: str, instruction: str, loader: str = "IP2PCheckpointLoader") -> dict:
    """Loader, image and the two text encodings: nodes 1-4 of every parity graph."""
    return {
        "1": {"class_type": loader, "inputs": {"ckpt_name": ckpt}},
        "2": {"class_type": "LoadImage", "inputs": {"image": image}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": instruction}},
        "4": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": ""}},
    }


def pack_edit(ckpt: str, image: str, instruction: str, *, seed: int, steps: int, text_cfg: float,
              image_cfg: float, sampler: str = "euler", scheduler: str = "simple", denoise: float = 1.0,
              loader: str = "IP2PCheckpointLoader", encode: dict | None = None, sampling: dict | None = None,
              nodes: dict | None = None, decode: bool = False) -> dict:
    """The pack's path: IP2P Encode -> IP2P Sampler -> SaveLatent (or IP2P Decode -> SaveImage).

    `encode` and `sampling` add inputs to the encode and sampler nodes, `nodes` adds nodes
    (ids from "20" up) that those inputs may link to.
    """
    graph = {**encoded(ckpt, image, instruction, loader),
             "5": {"class_type": "IP2PEncode", "inputs": {"positive": ["3", 0], "negative": ["4", 0],
                                                         "vae": ["1", 2], "image": ["2", 0], **(encode or {})}},
             "6": {"class_type": "IP2PSampler", "inputs": {
                 "model": ["1", 0], "positive": ["5", 0], "negative": ["5", 1], "seed": seed, "steps": steps,
                 "text_cfg": text_cfg, "image_cfg": image_cfg, "sampler_name": sampler, "scheduler": scheduler,
                 "denoise": denoise, **(sampling or {})}},
             **(nodes or {})}
    if decode:
        graph["7"] = {"class_type": "IP2PDecode", "inputs": {"samples": ["6", 0], "vae": ["1", 2]}}
        graph["8"] = {"class_type": "SaveImage", "inputs": {"images": ["7", 0], "filename_prefix": "pack"}}
    else:
        graph["7"] = {"class_type": "SaveLatent", "inputs": {"samples": ["6", 0], "filename_prefix": "pack"}}
    return graph


def instruction_lines(graph: dict, lines: list[str], per_line: bool = True) -> dict:
    """Swaps a pack_edit graph's encode for IP2P Encode (Instruction) with these instruction lines."""
    inputs = {k: v for k, v in graph["5"]["inputs"].items() if k not in ("positive", "negative")}
    graph["5"] = {"class_type": "IP2PEncodeText", "inputs": {
        **inputs, "clip": ["1", 1], "instruction": "\n".join(lines), "negative": "",
        "one_instruction_per_line": per_line}}
    return graph


def native_edit(ckpt: str, image: str, instruction: str, *, seed: int, steps: int, text_cfg: float,
                image_cfg: float, guider_inputs: set, encoder: str = "InstructPixToPixConditioning") -> dict:
    """ComfyUI's own true dual-CFG wiring: an IP2P conditioning node + DualCFGGuider +
    SamplerCustomAdvanced. `encoder` "IP2PEncode" swaps in the pack's encode node only."""
    guider = {"model": ["1", 0], "cond1": ["5", 0], "cond2": ["5", 1], "negative": ["4", 0],
              "cfg_conds": text_cfg, "cfg_cond2_negative": image_cfg}
    if "style" in guider_inputs:  # upstream only
        guider["style"] = "regular"
    image_input = "pixels" if encoder == "InstructPixToPixConditioning" else "image"
    return {**encoded(ckpt, image, instruction, "CheckpointLoaderSimple"),
            "5": {"class_type": encoder, "inputs": {
                "positive": ["3", 0], "negative": ["4", 0], "vae": ["1", 2], image_input: ["2", 0]}},
            "6": {"class_type": "DualCFGGuider", "inputs": guider},
            "7": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}},
            "8": {"class_type": "BasicScheduler", "inputs": {"model": ["1", 0], "scheduler": "simple",
                                                            "steps": steps, "denoise": 1.0}},
            "9": {"class_type": "RandomNoise", "inputs": {"noise_seed": seed}},
            "10": {"class_type": "SamplerCustomAdvanced", "inputs": {
                "noise": ["9", 0], "guider": ["6", 0], "sampler": ["7", 0], "sigmas": ["8", 0],
                "latent_image": ["5", 2]}},
            "11": {"class_type": "SaveLatent", "inputs": {"samples": ["10", 0], "filename_prefix": "native"}}}


def saved_latent(host, prompt: dict) -> torch.Tensor:
    (path,) = [p for p in host.output_files(host.run(prompt)) if p.suffix == ".latent"]
    return load_file(str(path))["latent_tensor"]


def saved_images(host, prompt: dict) -> list[np.ndarray]:
    paths = [p for p in host.output_files(host.run(prompt), types=["output"]) if p.suffix == ".png"]
    assert paths, "the workflow saved no image"
    return [np.asarray(Image.open(Path(p)).convert("RGB")) for p in paths]


def failure(host, prompt) -> str:
    """The message of the error `prompt` must end with."""
    with pytest.raises(HostError) as info:
        host.run(prompt)
    return str(info.value)
