"""Writes the UI-format twin and the drag-and-drop PNG of every API-format workflow.

    python -m harness.api_to_ui                 # workflows/<name>.json and <name>.png for each <name>.api.json
    python -m harness.api_to_ui --screenshots   # also re-render the PNGs' pictures in the real frontend

The API files stay the source of truth; this script lays their nodes out in groups (left to
right, a column per step), adds Note nodes that explain the graph and say where each model
file comes from, and takes input order, widget order and types from a running host's
/object_info (a ComfyUI started with the pack, as the tests do; upstream when
IP2P_COMFYUI_DIR is set: generate with upstream, what users run, so that nodes that gained
inputs there, e.g. Load CLIP's device, carry every widget value). Each PNG carries the workflow as ComfyUI's Save Image writes it
(tEXt chunks `prompt` = the API JSON, `workflow` = the UI JSON), so dropping it onto ComfyUI
loads the graph. Its picture is kept when the PNG exists (only the chunks are rewritten);
--screenshots renders the graph in headless Chromium (see harness/frontend_check.mjs), and a
new PNG without one gets a plain card. Every workflow needs an entry in LAYOUTS below.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from tools.comfy_host import REPO_ROOT, ComfyHost
from tools.ui_workflow import Box, api_to_ui, input_specs, read_png, write_png

log = logging.getLogger("ip2p.api_to_ui")
WORKFLOWS = REPO_ROOT / "workflows"
# The README's picture of the basic workflow (droppable onto ComfyUI too).
DOCS_PICTURE = ("basic_edit", REPO_ROOT / "docs" / "basic_workflow.png")

# Which input of which node names a file, and the folder under ComfyUI/ it goes in.
FILE_INPUTS = {
    ("IP2PCheckpointLoader", "ckpt_name"): "models/checkpoints",
    ("CheckpointLoaderSimple", "ckpt_name"): "models/checkpoints",
    ("IP2PDiffusersLoader", "model_path"): "models/diffusers",
    ("IP2PUNetLoader", "unet_name"): "models/diffusion_models",
    ("CLIPLoader", "clip_name"): "models/text_encoders",
    ("VAELoader", "vae_name"): "models/vae",
    ("LoraLoader", "lora_name"): "models/loras",
    ("LoraLoaderModelOnly", "lora_name"): "models/loras",
    ("ControlNetLoader", "control_net_name"): "models/controlnet",
    ("UpscaleModelLoader", "model_name"): "models/upscale_models",
    ("LoadImage", "image"): "input",
    ("LoadImageMask", "image"): "input",
}
# Where each file a shipped workflow names comes from.
SOURCES = {
    "instruct-pix2pix-00-22000.safetensors":
        "the InstructPix2Pix authors' model, 7.7 GB: https://huggingface.co/timbrooks/instruct-pix2pix "
        "(file instruct-pix2pix-00-22000.safetensors)",
    "instruct-pix2pix":
        "the diffusers folder of https://huggingface.co/timbrooks/instruct-pix2pix (model_index.json, "
        "unet/, vae/, text_encoder/, tokenizer/, scheduler/), or another diffusers IP2P model such as "
        "MagicBrush, as a folder named instruct-pix2pix",
    "instruct-pix2pix-unet.safetensors":
        "an IP2P UNet on its own, e.g. unet/diffusion_pytorch_model.safetensors of "
        "https://huggingface.co/timbrooks/instruct-pix2pix, renamed",
    "clip_l.safetensors":
        "the SD1.5 text encoder (CLIP ViT-L): clip_l.safetensors from "
        "https://huggingface.co/comfyanonymous/flux_text_encoders (older ComfyUI: models/clip)",
    "vae-ft-mse-840000-ema-pruned.safetensors":
        "an SD1.5 VAE: https://huggingface.co/stabilityai/sd-vae-ft-mse-original",
    "v1-5-pruned-emaonly.safetensors":
        "Stable Diffusion 1.5, the base your fine-tune was trained from: "
        "https://huggingface.co/stable-diffusion-v1-5/stable-diffusion-v1-5",
    "my-sd15-finetune.safetensors": "your own SD1.5 fine-tune (pick it in the loader)",
    "control_v11p_sd15_canny_fp16.safetensors":
        "ControlNet 1.1 canny for SD1.5: https://huggingface.co/comfyanonymous/ControlNet-v1-1_fp16_safetensors",
    "ip2p_example_lora.safetensors": "a LoRA of your choice for SD1.5 (pick yours in Load LoRA)",
    "cosxl_edit.safetensors":
        "CosXL Edit by Stability AI, an SDXL-based instruction-editing model: https://huggingface.co/stabilityai/cosxl "
        "(file cosxl_edit.safetensors; log in and accept its licence on the model page if asked)",
    "SD3_UltraEdit_freeform":
        "UltraEdit's free-form model (SD3): the diffusers folder of "
        "https://huggingface.co/BleachNick/SD3_UltraEdit_freeform (model_index.json, transformer/, vae/, "
        "text_encoder/, text_encoder_2/, text_encoder_3/, tokenizers, scheduler/), as a folder named "
        "SD3_UltraEdit_freeform; it is used as it is (T5 included when text_encoder_3/ is there)",
    "SD3_UltraEdit_w_mask":
        "UltraEdit's mask model (SD3): the diffusers folder of https://huggingface.co/BleachNick/SD3_UltraEdit_w_mask, "
        "as a folder named SD3_UltraEdit_w_mask (same layout as the free-form one)",
    "RealESRGAN_x2plus.pth":
        "Real-ESRGAN's 2x upscale model: https://github.com/xinntao/Real-ESRGAN/releases (file "
        "RealESRGAN_x2plus.pth), or another 2x ESRGAN-family model",
    "landscape.png": "the example picture examples/landscape.png of this pack (or pick your own image)",
    "landscape_sky_mask.png": "the example mask examples/landscape_sky_mask.png of this pack (white = edit)",
}

TUNING = ("Too little change: raise text_cfg (7.5 -> 9-12) or lower image_cfg (1.5 -> 1.2). "
          "Too much change: raise image_cfg (1.8-2) or lower text_cfg. 20 steps usually suffice (paper: 100). "
          "The seed is 'fixed' so the file reproduces its edit; set it to 'randomize' for variations.")
BLUE, GREEN, BROWN, PURPLE, GREY = "#3f789e", "#8A8", "#b58b2a", "#a1309b", "#88A"


@dataclass
class Layout:
    """How a workflow is shown: the read-me text, and its groups from left to right."""
    about: str
    groups: list[tuple[str, list[str], str]]  # title, API node ids, colour
    tips: dict[str, str] = field(default_factory=dict)  # group title -> a note at the top of that group
    rows: tuple[int, ...] = ()  # groups per row, for long graphs (default: one row)


def _groups(*groups):
    return [(title, ids.split(), color) for title, ids, color in groups]


LOAD, EDIT, RESULT = ("Model and image", "1 2", BLUE), ("Instruction and edit", "3 4", GREEN), ("Result", "5 6", BROWN)
LAYOUTS = {
    "basic_edit": Layout(
        "Basic InstructPix2Pix edit: load an image, write what to change as an instruction "
        "('turn the sky into a sunset', 'make it winter'), queue. IP2P Decode returns the edit at exactly "
        "the input's size.", _groups(LOAD, EDIT, RESULT), {"Instruction and edit": TUNING}),
    "batch_instructions": Layout(
        "One image, several instructions: with one_instruction_per_line on, each non-empty line of the "
        "instruction box is its own edit, in line order, as one batch. Batch item i uses seed + i, so any "
        "edit can be made again alone with that seed.", _groups(LOAD, EDIT, RESULT)),
    "masked_edit": Layout(
        "Masked edit: only the white part of the mask (here the sky) changes. mask_feather softens the "
        "border; IP2P Decode keeps the input's exact pixels outside the mask. To paint your own mask, "
        "right-click Load Image -> Open in MaskEditor and connect its MASK output to the encode node's mask "
        "instead of Load Image (as Mask).",
        _groups(("Model, image and mask", "1 2 7", BLUE), EDIT, RESULT)),
    "relevance_mask_edit": Layout(
        "A local edit without drawing a mask: IP2P Relevance Mask asks the model where the instruction changes "
        "its prediction and keeps the edit there; IP2P Decode returns the input's exact pixels everywhere else. "
        "The preview shows the mask. Raise threshold to edit less of the picture, margin to edit more around "
        "the named place. What it keeps and costs: benchmarks/RESULTS.md, 'Relevance masks on the demo model'.",
        _groups(LOAD, ("Instruction and where it belongs", "3 4 8 9", PURPLE), ("Edit", "5", GREEN),
                ("Result", "6 7", BROWN)), rows=(2, 2)),
    "color_match_edit": Layout(
        "Edit, then IP2P Color Match pulls the edit's colours and contrast back to the source's (CIELAB "
        "mean and spread; strength 0.8). Leave it out for edits meant to change colours ('make it night').",
        _groups(LOAD, EDIT, ("Result, colours matched to the source", "5 7 6", BROWN))),
    "guidance_schedule_edit": Layout(
        "Guidance schedule: image guidance rises from 1.2 at the first step to 1.8 at the last, so the "
        "first steps may change the composition and the last ones stay close to the input. guidance_rescale "
        "0.7 keeps the high text_cfg (9) from over-saturating. The schedule replaces the sampler's image_cfg.",
        _groups(LOAD, ("Instruction, schedule and edit", "3 7 4", GREEN), RESULT)),
    "guider_custom_sampler": Layout(
        "The same edit built from parts: CLIP Text Encode for the instruction and an empty negative, "
        "IP2P Encode attaches the image, IP2P Guider gives the dual-CFG guidance to SamplerCustomAdvanced, "
        "so any NOISE, SAMPLER and SIGMAS nodes can be used. With the same settings it gives exactly the "
        "IP2P Sampler's edit.",
        _groups(LOAD, ("Instruction and image", "3 4 5", PURPLE), ("Guidance and sampling", "6 7 8 9 10", GREEN),
                ("Result", "11 12", BROWN)), rows=(2, 2)),
    "inversion_edit": Layout(
        "An edit from the input's own noise: IP2P Invert runs the sampler backwards (with Euler) from the image "
        "to the noise it would be painted from, and the IP2P Sampler starts there instead of at the seed's "
        "noise. What that keeps of the picture, per kind of edit: benchmarks/RESULTS.md. Give both the same "
        "steps, sampler, scheduler and denoise; the sampler must not add noise (Euler, not Euler ancestral).",
        _groups(LOAD, ("Instruction and inversion", "3 4", PURPLE), ("Edit", "5", GREEN), ("Result", "6 7", BROWN))),
    "fast_edit": Layout(
        "The same kind of edit in fewer UNet passes: IP2P Fewer Passes' fast preset stops each guidance term "
        "once its two predictions agree (after that, one UNet pass per step instead of three) and reuses the UNet's "
        "deep features every other step. balanced stops the terms the same way without step caching; faithful "
        "is the edit without the node. What each costs: benchmarks/RESULTS.md.",
        _groups(LOAD, ("Instruction and preset", "3 4", PURPLE), ("Edit", "5", GREEN), ("Result", "6 7", BROWN))),
    "working_resolution_edit": Layout(
        "Working resolution: the image is edited with its longest side at 512 px (what the model was "
        "trained at) and IP2P Decode scales the result back to the input's size. Use it for large photos; "
        "0 edits at the input's own size.", _groups(LOAD, EDIT, RESULT)),
    "chain_edit": Layout(
        "Two instructions in a row: the first edit's result is the image of the second edit. Editing in "
        "steps often works better than one instruction that asks for two changes. The first result is "
        "shown in the preview; the final one is saved.",
        _groups(LOAD, ("First edit", "3 4 5 6", GREEN), ("Second edit (of the first result)", "7 8 9", PURPLE),
                ("Result", "10", BROWN)), rows=(2, 2)),
    "edit_then_upscale": Layout(
        "Edit, then upscale: the edit is scaled 2x with Upscale Image By (lanczos, no model needed), then "
        "a second IP2P pass at the higher resolution with denoise 0.4 adds detail while keeping the "
        "picture. Lower denoise keeps more of the upscaled image, higher changes more.",
        _groups(LOAD, ("Edit", "3 4 5", GREEN), ("Upscale and detail pass", "6 7 8", PURPLE),
                ("Result", "9 10", BROWN)), rows=(2, 2), tips={"Upscale and detail pass":
            "With an upscale model (e.g. RealESRGAN_x2plus.pth in ComfyUI/models/upscale_models/) use the "
            "workflow edit_then_upscale_model: Load Upscale Model + Upscale Image (using Model) in place of "
            "Upscale Image By. The detail pass stays the same."}),
    "edit_then_upscale_model": Layout(
        "Edit, then upscale with a model: an upscale model (Real-ESRGAN and the like) scales the edit 2x, "
        "then a second IP2P pass at the higher resolution with denoise 0.4 adds detail while keeping the "
        "picture. Lower denoise keeps more of the upscaled image, higher changes more. Without an upscale "
        "model use the workflow edit_then_upscale (Upscale Image By).",
        _groups(LOAD, ("Edit", "3 4 5", GREEN), ("Upscale with a model and detail pass", "6 7 8 9", PURPLE),
                ("Result", "10 11", BROWN)), rows=(2, 2), tips={"Upscale with a model and detail pass":
            "Any ESRGAN-family model in ComfyUI/models/upscale_models/ works. A 4x model (RealESRGAN_x4plus.pth, "
            "4x-UltraSharp.pth) makes the detail pass run at 4 times the size: add Upscale Image By 0.5 after "
            "Upscale Image (using Model) to stay at 2x."}),
    "diffusers_folder_edit": Layout(
        "The basic edit with a diffusers-format model: a folder under ComfyUI/models/diffusers/ holding "
        "model_index.json, unet/, vae/ and text_encoder/. IP2P Diffusers Loader converts it on load.",
        _groups(LOAD, EDIT, RESULT)),
    "cosxl_edit": Layout(
        "Edit with CosXL Edit (SDXL): the same nodes as the basic edit. The image is edited with its longest "
        "side at 1024 px, the size SDXL models were trained at, and IP2P Decode scales the result back to the "
        "input's size. CosXL samples with EDM v-prediction and takes the image latent scaled; ComfyUI "
        "recognises it from the file and the pack applies it, so there is nothing to switch. Any SDXL-based "
        "IP2P checkpoint works here too; for a diffusers folder such as diffusers/sdxl-instructpix2pix-768 "
        "use IP2P Diffusers Loader instead (and resolution 768).",
        _groups(LOAD, EDIT, RESULT), {"Instruction and edit":
            "CosXL Edit: text_cfg about 5 (3 to 7), image_cfg 1.5; too little change: raise text_cfg or lower "
            "image_cfg towards 1.2. 20 steps usually suffice. The seed is 'fixed' so the file reproduces its "
            "edit; set it to 'randomize' for variations."}),
    "ultraedit_edit": Layout(
        "Edit with UltraEdit's free-form model (SD3, trained the InstructPix2Pix way): the same nodes as the basic "
        "edit. IP2P Diffusers Loader builds it through ComfyUI's own SD3 code, with its text encoders (CLIP-L, "
        "CLIP-G, T5 when the folder has it) and VAE. The image is edited with its longest side at 512 px, the "
        "size UltraEdit was trained at (sides are padded to multiples of 16), and IP2P Decode scales the result "
        "back to the input's size. Euler, normal scheduler, 28 steps, text_cfg 7 and image_cfg 1.5 are the "
        "authors' pipeline defaults.",
        _groups(LOAD, EDIT, RESULT), {"Instruction and edit":
            "UltraEdit: the authors' examples use 50 steps, text_cfg 7.5 and image_cfg 1.5; for free-form edits they "
            "advise text_cfg at most 7.5. Too little change: raise text_cfg or lower image_cfg towards 1.2."}),
    "ultraedit_masked_edit": Layout(
        "Region edit with UltraEdit's mask model (SD3): only the white part of the mask (here the sky) is edited. "
        "The model takes the mask itself (as an image through the VAE), so the sampler runs as its authors' "
        "pipeline does, and IP2P Decode returns the input's exact pixels outside the mask. Without a mask the "
        "same model edits freely (it then sees an all-white mask). To paint your own mask, right-click Load "
        "Image -> Open in MaskEditor and connect its MASK output to the encode node's mask.",
        _groups(("Model, image and mask", "1 2 7", BLUE), EDIT, RESULT), {"Instruction and edit":
            "UltraEdit with a mask: the authors' demo suggests a higher text_cfg for region edits than for "
            "free-form ones (up to 12.5, image_cfg 1.5)."}),
    "unet_only_edit": Layout(
        "The basic edit with a UNet-only file: IP2P UNet Loader for the diffusion model, ComfyUI's Load "
        "CLIP (type stable_diffusion) and Load VAE for the text encoder and the VAE.",
        _groups(("Models and image", "1 7 8 2", BLUE), EDIT, RESULT)),
    "merge_fine_tune_edit": Layout(
        "Make an IP2P version of an SD1.5 fine-tune: IP2P + (fine-tune - SD1.5), by add difference. "
        "The merged model is used for an edit and saved to ComfyUI/output/checkpoints (move it to "
        "models/checkpoints to load it with IP2P Checkpoint Loader later).",
        _groups(("Models", "1 7 8", BLUE), ("Merge", "9 10", PURPLE), ("Image, instruction and edit", "2 3 4", GREEN),
                ("Result", "5 6", BROWN)), rows=(2, 2)),
    "ip2p_lora_controlnet": Layout(
        "IP2P with a LoRA and a ControlNet: Load LoRA patches the IP2P model and its text encoder (strength "
        "0.8); the Canny edges of the input steer the edit through an SD1.5 canny ControlNet applied to both "
        "conditionings (strength 0.6), so the edit keeps the picture's structure.",
        _groups(("Model, LoRA and image", "1 2 3", BLUE), ("Instruction and ControlNet", "4 5 6 7", PURPLE),
                ("Edit", "8", GREEN), ("Result", "9 10", BROWN)), rows=(2, 2),
        tips={"Instruction and ControlNet": "Lower the ControlNet strength (or end_percent) for edits that "
                                            "should change shapes; raise it to keep the outlines exactly."}),
}

# Canvas geometry, in the frontend's units.
TITLE_H, SLOT_H, WIDGET_H, MULTILINE_H, BODY_PAD = 30, 20, 24, 100, 14
GROUP_TITLE_H, GROUP_PAD, COLUMN_GAP, ROW_GAP, GROUP_GAP = 50, 20, 60, 50, 50
NODE_W, WIDE_NODE_W, NOTE_W, README_W = 320, 400, 400, 440
IMAGE_NODES = {"LoadImage": 330, "LoadImageMask": 330, "SaveImage": 300, "PreviewImage": 280}


def node_size(class_type: str, info: dict) -> tuple[float, float]:
    """Big enough for the node's sockets and widgets, as the frontend's computeSize measures them."""
    specs = input_specs(info, frontend=True)
    sockets = sum(not s.is_widget for s in specs)
    widgets = sum(MULTILINE_H if s.type == "STRING" and s.options.get("multiline") else WIDGET_H * (1 + len(s.extra_values))
                  for s in specs if s.is_widget)
    height = max(sockets, len(info["output"])) * SLOT_H + widgets + BODY_PAD
    wide = any(s.type == "STRING" and s.options.get("multiline") for s in specs)
    return (WIDE_NODE_W if wide else NODE_W), max(height, IMAGE_NODES.get(class_type, 0))


def note_size(text: str, width: float) -> tuple[float, float]:
    chars = int((width - 30) / 7.2)
    lines = sum(max(1, math.ceil(len(par) / chars)) for par in text.split("\n"))
    return width, 40 + lines * 17


def downloads(prompt: dict) -> str:
    """One line per file the workflow names: what it is, where it comes from, where it goes."""
    lines = []
    for node in prompt.values():
        for name, value in node["inputs"].items():
            folder = FILE_INPUTS.get((node["class_type"], name))
            if folder is None or not isinstance(value, str):
                continue
            if value not in SOURCES:
                raise SystemExit(f"{node['class_type']}.{name} = {value!r}: say where it comes from in SOURCES")
            lines.append(f"- {value}: {SOURCES[value]} -> ComfyUI/{folder}/")
    return "Files:\n" + "\n".join(dict.fromkeys(lines)) if lines else ""


def layout(stem: str, prompt: dict, object_info: dict) -> dict:
    """The UI workflow: groups left to right, inside each a column per step of its own chain."""
    spec = LAYOUTS.get(stem)
    if spec is None:
        raise SystemExit(f"workflows/{stem}.api.json has no entry in LAYOUTS (harness/api_to_ui.py): "
                         "add its notes and groups")
    grouped = [node_id for _, ids, _ in spec.groups for node_id in ids]
    if sorted(grouped) != sorted(prompt) or len(set(grouped)) != len(grouped):
        raise SystemExit(f"{stem}: LAYOUTS groups must hold every node exactly once "
                         f"(nodes {sorted(prompt, key=int)}, groups {grouped})")
    readme = spec.about + "\n\n" + downloads(prompt)
    readme_box = Box((0, GROUP_TITLE_H + TITLE_H), note_size(readme, README_W))
    notes, boxes, groups = [("Read me", readme.strip(), readme_box)], {}, []
    rows, start = [], 0
    for count in spec.rows or (len(spec.groups),):
        rows.append(spec.groups[start:start + count])
        start += count
    group_top = 0
    for row in rows:
        x = README_W + GROUP_GAP + GROUP_PAD
        top = group_top + GROUP_TITLE_H + TITLE_H
        row_bottom = top
        for title, ids, color in row:
            depth = _depths(prompt, ids)
            columns = [[i for i in ids if depth[i] == d] for d in range(max(depth.values()) + 1)]
            bottom, left = top, x
            tip = spec.tips.get(title)
            for c, column in enumerate(columns):
                sizes = {i: node_size(prompt[i]["class_type"], object_info[prompt[i]["class_type"]]) for i in column}
                width = max(w for w, _ in sizes.values())
                y = top
                if c == 0 and tip:
                    size = note_size(tip, max(width, NOTE_W))
                    notes.append(("Note", tip, Box((x, y), size)))
                    width = max(width, size[0])
                    y += size[1] + ROW_GAP
                for i in column:
                    boxes[i] = Box((x, y), sizes[i])
                    y += sizes[i][1] + ROW_GAP
                bottom = max(bottom, y - ROW_GAP)
                x += width + COLUMN_GAP
            right = x - COLUMN_GAP
            groups.append((title, (left - GROUP_PAD, group_top, right - left + 2 * GROUP_PAD,
                                   bottom + GROUP_PAD - group_top), color))
            x = right + GROUP_PAD + GROUP_GAP + GROUP_PAD
            row_bottom = max(row_bottom, bottom + GROUP_PAD)
        group_top = row_bottom + GROUP_GAP
    return api_to_ui(prompt, object_info, boxes, notes, groups)


def _depths(prompt: dict, ids: list[str]) -> dict[str, int]:
    """Longest chain of links inside the group leading to each node: its column."""
    inside = set(ids)
    depth = {}

    def visit(node_id):
        if node_id not in depth:
            sources = [v[0] for v in prompt[node_id]["inputs"].values()
                       if isinstance(v, list) and len(v) == 2 and v[0] in inside]
            depth[node_id] = 1 + max((visit(s) for s in sources), default=-1)
        return depth[node_id]

    for node_id in ids:
        visit(node_id)
    return depth


def card(stem: str):
    """A plain picture for a PNG that has no screenshot yet: the example image and the name."""
    from PIL import Image, ImageDraw

    image = Image.open(REPO_ROOT / "examples" / "landscape.png").convert("RGB")
    image.thumbnail((512, 512))
    canvas = Image.new("RGB", (image.width, image.height + 40), "#202020")
    canvas.paste(image, (0, 40))
    ImageDraw.Draw(canvas).text((10, 12), f"ComfyUI-IP2P: {stem} (drop onto ComfyUI)", fill="#e0e0e0")
    return canvas


def write(stem: str, object_info: dict, screenshot: Path | None = None) -> None:
    from PIL import Image

    prompt = json.loads((WORKFLOWS / f"{stem}.api.json").read_text())
    workflow = layout(stem, prompt, object_info)
    (WORKFLOWS / f"{stem}.json").write_text(json.dumps(workflow, indent=2) + "\n")
    png = WORKFLOWS / f"{stem}.png"
    if screenshot is not None:
        # A screenshot has few colours: a palette keeps the file small and the text sharp.
        picture = Image.open(screenshot).convert("RGB").quantize(256, dither=Image.Dither.NONE)
    elif png.exists():
        picture = Image.open(png)
        picture.load()
    else:
        picture = card(stem)
    write_png(picture, png, prompt, workflow)
    assert read_png(png) == {"prompt": prompt, "workflow": workflow}
    log.info("wrote workflows/%s.json and .png", stem)
    if stem == DOCS_PICTURE[0]:
        DOCS_PICTURE[1].parent.mkdir(exist_ok=True)
        write_png(picture, DOCS_PICTURE[1], prompt, workflow)
        log.info("wrote %s", DOCS_PICTURE[1].relative_to(REPO_ROOT))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("stems", nargs="*", help="workflow names (default: every workflows/*.api.json)")
    parser.add_argument("--object-info", type=Path, help="a saved /object_info JSON instead of starting a host")
    parser.add_argument("--screenshots", action="store_true",
                        help="render each graph in the real frontend (needs IP2P_COMFYUI_DIR, node, "
                             "playwright-core and chromium: see harness/frontend_check.mjs)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    stems = args.stems or sorted(p.name[:-len(".api.json")] for p in WORKFLOWS.glob("*.api.json"))
    with tempfile.TemporaryDirectory(prefix="ip2p-ui-") as work:
        if args.object_info and not args.screenshots:
            object_info = json.loads(args.object_info.read_text())
            for stem in stems:
                write(stem, object_info)
            return 0
        with ComfyHost(work) as host:
            if args.screenshots and host.kind != "upstream":
                raise SystemExit("--screenshots needs upstream ComfyUI, which serves the frontend: "
                                 "set IP2P_COMFYUI_DIR (and IP2P_COMFYUI_PYTHON)")
            log.info("node definitions from ComfyUI (%s)", host.kind)
            object_info = host.object_info()
            for stem in stems:
                write(stem, object_info)
            if args.screenshots:
                from .frontend_check import render

                shots = Path(work) / "shots"
                render(host, [WORKFLOWS / f"{s}.json" for s in stems], screenshots=shots)
                for stem in stems:
                    write(stem, object_info, shots / f"{stem}.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
