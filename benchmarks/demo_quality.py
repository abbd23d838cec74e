"""How well does the shipped demo model edit? The test pairs, scored against their exact targets.

    python -m benchmarks.demo_quality                      # the tables in benchmarks/RESULTS.md
    python -m benchmarks.demo_quality --pairs 24 --grid-pairs 6 --out quick.md   # a quick look

The same edits three ways, on the same weights and initial noise (Euler, "simple" scheduler =
diffusers' "trailing" spacing, 20 steps, text_cfg 7.5, image_cfg 1.5, seed + i for pair i):
**pack** (IP2P Checkpoint Loader's demo model -> IP2P Encode (Instruction) -> IP2P Sampler ->
IP2P Decode in a real ComfyUI host, 16 pairs a batch), **native** (ComfyUI's Load Checkpoint,
InstructPixToPixConditioning, DualCFGGuider and SamplerCustomAdvanced on the expanded file, one
pair a prompt) and **diffusers** (StableDiffusionInstructPix2PixPipeline on the same file). Per
path and edit kind (`training.evaluate_edits`): the strict success rate (the named region reads
as the asked colour and nothing the instruction does not name moved past the tolerance), the
named change alone, the MSE against the target as a ratio to returning the input unchanged, and
the collateral error where nothing should change; the overall line is the mean over kinds. The
test pairs (`synthetic_shapes.evaluation_pairs`) are reported on and never chosen on. Then the
pack alone: Euler ancestral (the paper's sampler), a picture of the pack's first failures and
successes (input, edit, target), and a grid of text_cfg x image_cfg on the first --grid-pairs
pairs, with a picture of it.
"""
from __future__ import annotations

import json
import logging
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from harness.diffusers_reference import comfy_noise, like_comfy, start_latents
from ip2p_core import demo_model
from tools.comfy_host import ComfyHost
from tools.demo_checkpoint import CACHE, checkpoint_file
from training.evaluate_edits import COLLATERAL_TOLERANCE, EditScore, score, summarise, summarise_by_kind
from training.synthetic_shapes import SPLIT_SEEDS, EditPair, evaluation_pairs
from training.trainable_model import comfy_tokenizer_dir, load_model

from . import report_cli

REPO = Path(__file__).resolve().parent.parent

log = logging.getLogger("demo_quality")
SPLIT = "test"  # what this benchmark reports on; nothing is chosen on it
SEED = 0
STEPS = 20
TEXT_CFG, IMAGE_CFG = 7.5, 1.5
BATCH = 16
GRID = {"text_cfg": (0.0, 3.0, 7.5, 12.0), "image_cfg": (1.0, 1.5, 2.5, 5.0)}


def pack_batch(names: list[str], instructions: list[str], seed: int, sampler: str = "euler",
               text_cfg: float = TEXT_CFG, image_cfg: float = IMAGE_CFG, sampler_inputs: dict | None = None,
               nodes: dict | None = None) -> dict:
    """One prompt editing image i with instruction i (noise of seed + i), through the pack's nodes:
    1 loader, 2 IP2P Encode (Instruction), 3 IP2P Sampler (plus `sampler_inputs`, which may link
    to the added `nodes`), 4 IP2P Decode, 5 SaveImage."""
    graph = {"1": {"class_type": "IP2PCheckpointLoader", "inputs": {"ckpt_name": demo_model.CHECKPOINT_NAME}}}
    images = loaded_batch(graph, names, "l")
    graph.update({
        "2": {"class_type": "IP2PEncodeText", "inputs": {"clip": ["1", 1], "vae": ["1", 2], "image": images,
                                                         "instruction": "\n".join(instructions), "negative": "",
                                                         "one_instruction_per_line": True}},
        "3": {"class_type": "IP2PSampler", "inputs": {"model": ["1", 0], "positive": ["2", 0], "negative": ["2", 1],
                                                      "seed": seed, "steps": STEPS, "text_cfg": text_cfg,
                                                      "image_cfg": image_cfg, "sampler_name": sampler,
                                                      "scheduler": "simple", "denoise": 1.0,
                                                      **(sampler_inputs or {})}},
        "4": {"class_type": "IP2PDecode", "inputs": {"samples": ["3", 0], "vae": ["1", 2]}},
        "5": {"class_type": "SaveImage", "inputs": {"images": ["4", 0], "filename_prefix": "pack"}},
        **(nodes or {}),
    })
    return graph


def loaded_batch(graph: dict, names: list[str], prefix: str) -> list:
    """Adds Load Image nodes `<prefix><i>` for the input pictures `names`, joined into one batch two
    at a time (ImageBatch takes two), and returns the link to the batch."""
    images = []
    for index, name in enumerate(names):
        graph[f"{prefix}{index}"] = {"class_type": "LoadImage", "inputs": {"image": name}}
        images.append([f"{prefix}{index}", 0])
    while len(images) > 1:
        joined = []
        for a, b in zip(images[::2], images[1::2]):
            node = f"{prefix}b{len(graph)}"
            graph[node] = {"class_type": "ImageBatch", "inputs": {"image1": a, "image2": b}}
            joined.append([node, 0])
        images = joined + images[len(images) // 2 * 2:]
    return images[0]


def native_single(checkpoint: str, name: str, instruction: str, seed: int, guider_inputs: set) -> dict:
    guider = {"model": ["1", 0], "cond1": ["5", 0], "cond2": ["5", 1], "negative": ["4", 0],
              "cfg_conds": TEXT_CFG, "cfg_cond2_negative": IMAGE_CFG}
    if "style" in guider_inputs:  # upstream: the paper's formula
        guider["style"] = "regular"
    return {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": checkpoint}},
        "2": {"class_type": "LoadImage", "inputs": {"image": name}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": instruction}},
        "4": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": ""}},
        "5": {"class_type": "InstructPixToPixConditioning", "inputs": {"positive": ["3", 0], "negative": ["4", 0],
                                                                       "vae": ["1", 2], "pixels": ["2", 0]}},
        "6": {"class_type": "DualCFGGuider", "inputs": guider},
        "7": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}},
        "8": {"class_type": "BasicScheduler", "inputs": {"model": ["1", 0], "scheduler": "simple", "steps": STEPS,
                                                         "denoise": 1.0}},
        "9": {"class_type": "RandomNoise", "inputs": {"noise_seed": seed}},
        "10": {"class_type": "SamplerCustomAdvanced", "inputs": {"noise": ["9", 0], "guider": ["6", 0],
                                                                 "sampler": ["7", 0], "sigmas": ["8", 0],
                                                                 "latent_image": ["5", 2]}},
        "11": {"class_type": "VAEDecode", "inputs": {"samples": ["10", 0], "vae": ["1", 2]}},
        "12": {"class_type": "SaveImage", "inputs": {"images": ["11", 0], "filename_prefix": "native"}},
    }


def saved(host, outputs) -> list[Image.Image]:
    return [Image.open(p).convert("RGB") for p in host.output_files(outputs, types=["output"]) if p.suffix == ".png"]


def pack_edits(host, names: list[str], pairs: list[EditPair], batch: int = BATCH, graph_hook=None,
               **settings) -> list[Image.Image]:
    """The pairs edited through the pack, `batch` a prompt; `graph_hook` may change each graph."""
    edits = []
    for start in range(0, len(pairs), batch):
        part = slice(start, start + batch)
        graph = pack_batch(names[part], [p.instruction for p in pairs[part]], SEED + start, **settings)
        edits += saved(host, host.run(graph_hook(graph) if graph_hook else graph, timeout=3600))
    return edits


def native_edits(host, checkpoint: str, names: list[str], pairs: list[EditPair]) -> list[Image.Image]:
    guider_inputs = set(host.object_info("DualCFGGuider")["input"]["required"])
    return [saved(host, host.run(native_single(checkpoint, name, pair.instruction, SEED + index, guider_inputs)))[0]
            for index, (name, pair) in enumerate(zip(names, pairs))]


def diffusers_pipeline(checkpoint: Path):
    """The diffusers pipeline on the expanded demo checkpoint, sampling as ComfyUI does."""
    from training.trainable_model import ip2p_pipeline

    return like_comfy(ip2p_pipeline(load_model(checkpoint, comfy_tokenizer_dir())))


def diffusers_edits(checkpoint: Path, pairs: list[EditPair]) -> list[Image.Image]:
    return pipeline_edits(diffusers_pipeline(checkpoint), pairs)


def pipeline_edits(pipe, pairs: list[EditPair], text_cfg: float = TEXT_CFG,
                   image_cfg: float = IMAGE_CFG) -> list[Image.Image]:
    """The pairs edited by a diffusers pipeline, from ComfyUI's initial noise for seed + i (pack_edits' noise)."""
    edits = []
    side = demo_model.IMAGE_SIZE // 8
    for start in range(0, len(pairs), BATCH):
        part = pairs[start:start + BATCH]
        noise = torch.cat([comfy_noise((1, 4, side, side), SEED + start + i) for i in range(len(part))])
        with torch.no_grad():
            edits += pipe([p.instruction for p in part], image=[p.original for p in part], num_inference_steps=STEPS,
                          guidance_scale=text_cfg, image_guidance_scale=image_cfg,
                          latents=start_latents(pipe, noise, STEPS),
                          generator=torch.Generator().manual_seed(SEED + start)).images
    return edits


def table(scores: list[EditScore]) -> list[dict]:
    """One row per edit kind, the held-out phrasings (any kind), and the overall line: the mean over kinds."""
    summaries = summarise_by_kind(scores)
    held_out = [s for s in scores if s.held_out_phrasing]
    if held_out:
        summaries = {**{k: v for k, v in summaries.items() if k != "overall"},
                     "held-out phrasings": summarise(held_out), "overall (mean over kinds)": summaries["overall"]}
    return [{"kind": kind, **asdict(summary)} for kind, summary in summaries.items()]


def markdown_rows(path: str, rows: list[dict]) -> list[str]:
    collateral = lambda r: "-" if r["collateral_mse"] is None else f"{r['collateral_mse']:.4f}"  # noqa: E731
    return [f"| {path} | {r['kind']} | {r['pairs']} | {100 * r['success']:.0f} % | {100 * r['named_change']:.0f} % | "
            f"{r['ratio']:.2f} | {collateral(r)} | {r['mse']:.4f} | {r['identity_mse']:.4f} |" for r in rows]


def edits_picture(pairs: list[EditPair], edits: list[Image.Image], scores: list[EditScore], path: Path,
                  count: int = 8, cell: int = 128) -> list[dict]:
    """Input, edit and target side by side, with the instruction and the verdict, for the first
    `count` failures and some successes (failures first, framed red); returns what it shows, row by row."""
    failed = [i for i, s in enumerate(scores) if not s.success][:count]
    passed = [i for i, s in enumerate(scores) if s.success][:max(count - len(failed), count // 2)]
    rows = failed + passed
    width, caption = 3 * (cell + 4) + 4, 300
    picture = Image.new("RGB", (width + caption, len(rows) * (cell + 4) + 4), (255, 255, 255))
    draw = ImageDraw.Draw(picture)
    for r, index in enumerate(rows):
        colour = (220, 40, 40) if index in failed else (40, 170, 60)
        picture.paste(Image.new("RGB", (width, cell + 4), colour), (0, r * (cell + 4)))
        for c, image in enumerate((pairs[index].original, edits[index], pairs[index].edited)):
            box = (4 + c * (cell + 4), 2 + r * (cell + 4))
            picture.paste(image.resize((cell, cell), Image.Resampling.NEAREST), box)
        verdict = "success" if scores[index].success else (
            "named change made, something else changed too" if scores[index].named_change else "failed")
        draw.text((width + 8, r * (cell + 4) + cell // 2 - 10), f'"{pairs[index].instruction}"\n{verdict}',
                  fill=(0, 0, 0))
    picture.save(path)
    return [{"instruction": pairs[i].instruction, "kind": pairs[i].edit.kind, "success": scores[i].success,
             "named_change": scores[i].named_change} for i in rows]


def largest_difference(a: list[Image.Image], b: list[Image.Image]) -> int:
    return max(int(np.abs(np.asarray(x, dtype=int) - np.asarray(y, dtype=int)).max()) for x, y in zip(a, b))


def grid_picture(rows: list[list[Image.Image]], source: Image.Image, path: Path, cell: int = 128) -> None:
    """The source, then one row per text_cfg, one column per image_cfg."""
    picture = Image.new("RGB", ((len(rows[0]) + 1) * (cell + 4), len(rows) * (cell + 4)), (255, 255, 255))
    picture.paste(source.resize((cell, cell), Image.Resampling.NEAREST), (0, 0))
    for r, row in enumerate(rows):
        for c, image in enumerate(row):
            picture.paste(image.resize((cell, cell), Image.Resampling.NEAREST), ((c + 1) * (cell + 4), r * (cell + 4)))
    picture.save(path)


def held_out_inputs(host, pairs: list[EditPair], checkpoint: Path) -> tuple[list[str], str]:
    """The pairs' input pictures in the host's input folder, and the expanded checkpoint among its
    checkpoints (for the native path, which loads it with Load Checkpoint): (names, file name)."""
    inputs = host.work_dir / "pairs"
    inputs.mkdir(exist_ok=True)
    names = []
    for index, pair in enumerate(pairs):
        pair.original.save(inputs / f"pair{index:04d}.png")
        names.append(host.add_input(inputs / f"pair{index:04d}.png"))
    return names, host.add_model("checkpoints", checkpoint, "demo_expanded.safetensors")


def run(args) -> dict:
    pairs = evaluation_pairs(SPLIT, args.pairs, demo_model.IMAGE_SIZE)
    checkpoint = checkpoint_file(CACHE)
    report: dict = {"pairs": len(pairs), "paths": {}, "seconds": {}}
    with tempfile.TemporaryDirectory(prefix="demo-quality-") as work, ComfyHost(work) as host:
        names, file_name = held_out_inputs(host, pairs, checkpoint)
        report["host"] = host.kind
        edits = {}
        for path, make in (("pack", lambda: pack_edits(host, names, pairs)),
                           ("native", lambda: native_edits(host, file_name, names, pairs)),
                           ("diffusers", lambda: diffusers_edits(checkpoint, pairs)),
                           ("pack, Euler ancestral",
                            lambda: pack_edits(host, names, pairs, sampler="euler_ancestral"))):
            t0 = time.perf_counter()
            edits[path] = make()
            report["seconds"][path] = time.perf_counter() - t0
            report["paths"][path] = table([score(p, e) for p, e in zip(pairs, edits[path])])
            log.info("%s: %d edits in %.0f s", path, len(edits[path]), report["seconds"][path])
        report["pictured"] = edits_picture(pairs, edits["pack"], [score(p, e) for p, e in zip(pairs, edits["pack"])],
                                           args.edits_picture)
        report["largest_pixel_difference"] = {other: largest_difference(edits["pack"], edits[other])
                                              for other in ("native", "diffusers")}
        grid_pairs = pairs[:args.grid_pairs]
        report["grid"], report["grid_pairs"], pictures = [], len(grid_pairs), []
        for text_cfg in GRID["text_cfg"]:
            row = []
            for image_cfg in GRID["image_cfg"]:
                results = pack_edits(host, names[:len(grid_pairs)], grid_pairs, text_cfg=text_cfg, image_cfg=image_cfg)
                summary = summarise([score(p, e) for p, e in zip(grid_pairs, results)])
                changed = float(np.mean([np.mean((np.asarray(e, float) - np.asarray(p.original, float)) ** 2) / 255 ** 2
                                         for p, e in zip(grid_pairs, results)]))
                report["grid"].append({"text_cfg": text_cfg, "image_cfg": image_cfg, "mse_vs_input": changed,
                                       "mse_vs_target": summary.mse, "success": summary.success})
                row.append(results[args.grid_example])
            pictures.append(row)
        grid_picture(pictures, grid_pairs[args.grid_example].original, args.grid_picture)
        report["grid_example"] = grid_pairs[args.grid_example].instruction
    if args.record:
        record_figures(report, demo_model.MODELS_DIR)
    return report


RECORDED_PATHS = {"pack": "euler", "pack, Euler ancestral": "euler_ancestral"}


def record_figures(report: dict, models: Path) -> None:
    """The pack's strict success per kind, both samplers, into the shipped model's record ("test_figures")."""
    path = models / demo_model.RECORD_NAME
    record = json.loads(path.read_text())
    record["test_figures"] = {
        "command": "python -m benchmarks.demo_quality --record", "split": SPLIT, "seed": SPLIT_SEEDS[SPLIT],
        "pairs": report["pairs"], "steps": STEPS, "text_cfg": TEXT_CFG, "image_cfg": IMAGE_CFG,
        "strict_success": {sampler: {row["kind"]: round(row["success"], 4) for row in report["paths"][path_name]}
                           for path_name, sampler in RECORDED_PATHS.items()}}
    path.write_text(json.dumps(record, indent=2) + "\n")


def markdown(report: dict, command: str) -> str:
    lines = [f"Command: `{command}`; the first {report['pairs']} {SPLIT} pairs (seed {SPLIT_SEEDS[SPLIT]}: shape sizes "
             f"varied, held-out phrasings among them), {STEPS} steps, text_cfg {TEXT_CFG}, image_cfg {IMAGE_CFG}; "
             f"collateral tolerance {COLLATERAL_TOLERANCE}; host: {report['host']}; {report['machine']}; "
             f"{report['total_seconds'] / 60:.0f} min in all.", "",
             "| path | edit kind | pairs | success (strict) | named change made | MSE ratio to the input unchanged "
             "| collateral MSE | MSE vs target | MSE of the input unchanged |", "|---|---|---|---|---|---|---|---|---|"]
    for path, rows in report["paths"].items():
        lines += markdown_rows(path, rows)
    diff = report["largest_pixel_difference"]
    lines += ["", f"Largest pixel difference (0-255) from the pack's edits: native {diff['native']}, diffusers "
                  f"{diff['diffusers']}. Seconds for all edits: " +
              ", ".join(f"{path} {seconds:.0f}" for path, seconds in report["seconds"].items()) + ".", "",
              f"The scales, on the first {report['grid_pairs']} pairs (pack, Euler): MSE "
              "against the input (how much changed) / against the target / success rate.", "",
              "| text_cfg \\ image_cfg | " + " | ".join(str(v) for v in GRID["image_cfg"]) + " |",
              "|---|" + "---|" * len(GRID["image_cfg"])]
    for text_cfg in GRID["text_cfg"]:
        cells = [g for g in report["grid"] if g["text_cfg"] == text_cfg]
        lines.append(f"| {text_cfg} | " + " | ".join(
            f"{g['mse_vs_input']:.4f} / {g['mse_vs_target']:.4f} / {100 * g['success']:.0f} %" for g in cells) + " |")
    return "\n".join(lines) + "\n"


def options(parser) -> None:
    parser.add_argument("--pairs", type=int, default=200)
    parser.add_argument("--grid-pairs", type=int, default=16)
    parser.add_argument("--grid-example", type=int, default=0, help="which grid pair the picture shows")
    parser.add_argument("--grid-picture", type=Path, default=REPO / "docs" / "demo_scales_grid.png")
    parser.add_argument("--edits-picture", type=Path, default=REPO / "docs" / "demo_test_edits.png",
                        help="input, edit and target of the pack's first failures and successes")
    parser.add_argument("--record", action="store_true",
                        help="also write the pack's per-kind success into the shipped model's record (models/)")


if __name__ == "__main__":
    report_cli.main("demo_quality", __doc__, options, run, markdown)
