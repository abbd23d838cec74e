"""Relevance masks on the demo model: what IP2P Relevance Mask keeps, beside the same edits without it.

    python -m benchmarks.relevance_quality                    # the validation pairs: choosing the node's defaults
    python -m benchmarks.relevance_quality --split test       # the test pairs: reporting them
    python -m benchmarks.relevance_quality --pairs 12 --timing-pairs 1 --out quick.md   # a quick look

Through the pack's nodes in a real host, 20 steps Euler, "simple" scheduler, text_cfg 7.5,
image_cfg 1.5, the noise of seed + i for pair i (the same in every row):

* the masks alone: IP2P Relevance Mask's relevance output for each (noise level, draws) setting,
  thresholded and grown here by the node's own function for each (threshold, margin), against
  the true changed region (where the drawn target differs from the input, grown by the score's
  edge): IoU per edit kind;
* edits: without a mask, with the relevance mask of each edit setting (on the validation pairs:
  the paper's, the node's defaults and the best masks by IoU, each also kept at decoding only,
  i.e. the edit without the mask with the input put back outside it; on the test pairs: the
  defaults, in both modes), and with the true region drawn as a mask (the oracle): the strict
  success, the collateral MSE (against the target where the instruction names nothing) and the
  MSE ratio to the unchanged input, per kind (training/evaluate_edits.py);
* cost, on the first --timing-pairs pairs, one edit per prompt, with and without the mask
  alternately, --repeats times: the UNet passes per edit counted inside the host
  (benchmarks/host_probe) and the median prompt seconds, as a ratio to the edit alone.
"""
from __future__ import annotations

import itertools
import logging
import statistics
import tempfile
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from ip2p_core import demo_model
from ip2p_core.inference.masks import composite
from ip2p_core.inference.relevance import DEFAULTS, PAPER_NOISE_LEVEL, relevance_mask
from tools.comfy_host import ComfyHost
from tools.demo_checkpoint import CACHE, checkpoint_file
from training.evaluate_edits import changed_region, score, summarise_by_kind
from training.synthetic_shapes import EDIT_KINDS, EditPair, evaluation_pairs

from . import report_cli
from .demo_quality import BATCH, SEED, held_out_inputs, loaded_batch, pack_batch, saved
from .fewer_passes import Probe, passes_per_edit

HERE = Path(__file__).resolve().parent
log = logging.getLogger("relevance_quality")
MAP_GRID = {"noise_level": (0.6, 0.7, 0.8), "draws": (1, 4)}
MASK_GRID = {"threshold": (0.3, 0.4, 0.5, 0.6, 0.7), "margin": (0, 2, 4)}
BEST_BY_IOU = 3  # validation: this many of the best masks by IoU are also edited
PAPER = {"noise_level": PAPER_NOISE_LEVEL, "draws": 1, "threshold": 0.5, "margin": 0, "feather": 0}


def label(setting: dict) -> str:
    return (f"noise {setting['noise_level']}, {setting['draws']} draw{'s' * (setting['draws'] > 1)}, "
            f"threshold {setting['threshold']}, margin {setting['margin']}"
            + (f", feather {setting['feather']}" if setting.get("feather") else "")
            + ("; kept at decoding only" if setting.get("while_sampling") is False else ""))


def with_relevance(setting: dict, save_outputs: bool):
    """A graph hook: IP2P Relevance Mask between IP2P Encode and the sampler, saving its mask and
    relevance (MaskToImage, SaveImage) when `save_outputs`; without the sampler when there is none."""
    def hook(graph: dict) -> dict:
        graph["rm"] = {"class_type": "IP2PRelevanceMask", "inputs": {
            "model": ["1", 0], "positive": ["2", 0], "negative": ["2", 1], "seed": 0, **setting}}
        if "3" in graph:
            graph["3"]["inputs"].update(positive=["rm", 0], negative=["rm", 1])
        if save_outputs:
            for output, name in ((3, "mask"), (4, "relevance")):
                graph[f"{name}_image"] = {"class_type": "MaskToImage", "inputs": {"mask": ["rm", output]}}
                graph[f"{name}_save"] = {"class_type": "SaveImage", "inputs": {"images": [f"{name}_image", 0],
                                                                               "filename_prefix": name}}
        return graph
    return hook


def maps_only(hook):
    """A graph hook that drops the sampler, decoder and edit saving: the relevance node alone."""
    def only(graph: dict) -> dict:
        for node in ("3", "4", "5"):
            graph.pop(node)
        return hook(graph)
    return only


def with_oracle(mask_of: dict[str, str]):
    """A graph hook: the true changed region of each input picture (`mask_of`: input name -> mask
    image name), drawn as masks in the pictures' order, into IP2P Encode's mask."""
    def hook(graph: dict) -> dict:
        pictures = sorted((node for node in graph if node.startswith("l") and node[1:].isdigit()),
                          key=lambda node: int(node[1:]))
        masks = loaded_batch(graph, [mask_of[graph[node]["inputs"]["image"]] for node in pictures], "m")
        graph["oracle"] = {"class_type": "ImageToMask", "inputs": {"image": masks, "channel": "red"}}
        graph["2"]["inputs"]["mask"] = ["oracle", 0]
        return graph
    return hook


def run_batches(host, names: list[str], pairs: list[EditPair], hook=None, batch: int = BATCH) -> dict[str, list]:
    """The pairs through `pack_batch` (changed by `hook`), `batch` a prompt: the images each saving
    node wrote, by node id, in pair order."""
    found: dict[str, list] = {}
    for start in range(0, len(pairs), batch):
        part = slice(start, start + batch)
        graph = pack_batch(names[part], [p.instruction for p in pairs[part]], SEED + start)
        outputs = host.run(hook(graph) if hook else graph, timeout=3600)
        for node in outputs:
            found.setdefault(node, []).extend(saved(host, {node: outputs[node]}))
    return found


def kept_outside(source: Image.Image, edit: Image.Image, mask: Image.Image) -> Image.Image:
    """An edit made without the mask, with the source put back outside the mask by IP2P Decode's own
    composite: what the mask gives when it does not steer sampling."""
    pixels = [torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0)[None]
              for image in (edit, source)]
    mixed = composite(*pixels, as_map(mask)[None])[0].numpy()
    return Image.fromarray(np.rint(mixed * 255.0).astype(np.uint8))


def as_map(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(image.convert("L"), dtype=np.float32) / 255.0)


def iou(mask: np.ndarray, truth: np.ndarray) -> float:
    union = (mask | truth).sum()
    return float((mask & truth).sum() / union) if union else 1.0


def true_regions(pairs: list[EditPair]) -> list[np.ndarray]:
    """Where each pair's target differs from its input (grown by the score's edge)."""
    return [changed_region(p, p.original.size[0]) for p in pairs]


def iou_by_kind(pairs: list[EditPair], truths: list[np.ndarray], relevance: list[torch.Tensor], threshold: float,
                margin: int) -> dict:
    """The masks' IoU against the true changed regions, per kind and overall (the mean of the kinds)."""
    masks = relevance_mask(torch.stack(relevance), threshold, margin, 0).numpy() >= 0.5
    values = [(p.edit.kind, iou(m, truth)) for p, m, truth in zip(pairs, masks, truths)]
    kinds = {kind: float(np.mean([v for k, v in values if k == kind])) for kind in EDIT_KINDS
             if any(k == kind for k, _ in values)}
    return {**kinds, "overall": float(np.mean(list(kinds.values())))}


def edit_row(pairs: list[EditPair], edits: list[Image.Image]) -> dict:
    return {kind: asdict(summary) for kind, summary in summarise_by_kind([score(p, e) for p, e in zip(pairs, edits)]
                                                                           ).items()}


def choose_edit_settings(split: str, mask_table: dict) -> list[dict]:
    """What is edited with a relevance mask: on the test pairs the node's defaults; on the validation
    pairs the paper's, the defaults and the best masks by IoU."""
    defaults = dict(DEFAULTS)
    if split == "test":  # the defaults, and the same mask in the other mode
        return [defaults, {**defaults, "while_sampling": not defaults["while_sampling"]}]
    ranked = sorted(mask_table.values(), key=lambda row: -row["iou"]["overall"])
    chosen = [PAPER, defaults, *({**row["setting"], "feather": 0} for row in ranked[:BEST_BY_IOU])]
    unique = []
    for setting in chosen:
        if setting not in unique:
            unique.append(setting)
    return unique


def picture(pairs: list[EditPair], masks: list[Image.Image], unmasked: list[Image.Image],
            masked: list[Image.Image], path: Path, cell: int = 96) -> list[dict]:
    """Input, mask, edit without and with the mask, target: the first pair of each kind, then the
    first pairs the masked edit fails, with the instruction and both verdicts; returns the rows."""
    before, after = ([score(p, e) for p, e in zip(pairs, edits)] for edits in (unmasked, masked))
    rows = [next(i for i, p in enumerate(pairs) if p.edit.kind == kind) for kind in EDIT_KINDS
            if any(p.edit.kind == kind for p in pairs)]
    rows += [i for i, s in enumerate(after) if not s.success and i not in rows][:3]
    width, caption = 5 * (cell + 4) + 4, 330
    sheet = Image.new("RGB", (width + caption, len(rows) * (cell + 4) + 24), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for c, title in enumerate(("input", "relevance mask", "edit, no mask", "edit, with the mask", "target")):
        draw.text((4 + c * (cell + 4), 6), title, fill=(0, 0, 0))
    for r, index in enumerate(rows):
        top = 20 + r * (cell + 4)
        images = (pairs[index].original, masks[index], unmasked[index], masked[index], pairs[index].edited)
        for c, image in enumerate(images):
            sheet.paste(image.convert("RGB").resize((cell, cell), Image.Resampling.NEAREST), (4 + c * (cell + 4), top))
        verdicts = [("success" if s.success else "fails: " + ("something else changed" if s.named_change
                                                               else "named change not made"))
                    for s in (before[index], after[index])]
        draw.text((width + 8, top + cell // 2 - 18), f'"{pairs[index].instruction}"\nno mask: {verdicts[0]}\n'
                  f"with the mask: {verdicts[1]}", fill=(0, 0, 0))
    sheet.save(path)
    return [{"instruction": pairs[i].instruction, "kind": pairs[i].edit.kind, "success without": before[i].success,
             "success with": after[i].success} for i in rows]


def timing(host, probe: Probe, names: list[str], pairs: list[EditPair], setting: dict, repeats: int) -> dict:
    """Alternately without and with the mask, one edit per prompt: passes per edit, median prompt
    seconds, and the mask's ratio to the edit alone."""
    seconds = {"edit alone": [], "with the relevance mask": []}
    passes = {key: [] for key in seconds}
    for hook in (None, with_relevance(setting, False)):  # warm-up: the first prompt loads the model
        run_batches(host, names[:1], pairs[:1], hook, batch=1)
    for _ in range(repeats):
        for key, hook in (("edit alone", None), ("with the relevance mask", with_relevance(setting, False))):
            for index in range(len(pairs)):
                probe.new_records()
                run_batches(host, names[index:index + 1], pairs[index:index + 1], hook, batch=1)
                records = probe.new_records()
                loops = [r for r in records if "loop_seconds" in r]
                passes[key].append(passes_per_edit([{"model_calls": sum((r["model_calls"] for r in loops), [])}],
                                                   [1]))
                seconds[key].extend(r["prompt_seconds"] for r in records if "prompt_seconds" in r)
    median = {key: statistics.median(values) for key, values in seconds.items()}
    return {"prompts_per_path": len(seconds["edit alone"]),
            "passes": {key: statistics.mean(values) for key, values in passes.items()}, "prompt_seconds": median,
            "ratio": median["with the relevance mask"] / median["edit alone"]}


def run(args) -> dict:
    pairs = evaluation_pairs(args.split, args.pairs, demo_model.IMAGE_SIZE)
    report: dict = {"split": args.split, "pairs": len(pairs), "defaults": dict(DEFAULTS), "masks": {},
                    "edits": {}}
    with tempfile.TemporaryDirectory(prefix="relevance-") as work:
        probe = Probe(Path(work) / "timings.jsonl")
        host = ComfyHost(work, env={"IP2P_BENCH_TIMINGS": str(probe.path)})
        (host.custom_nodes_dir / "ip2p_bench_probe").symlink_to(HERE / "host_probe", target_is_directory=True)
        with host:
            names, _ = held_out_inputs(host, pairs, checkpoint_file(CACHE))
            report["host"] = host.kind
            defaults = dict(DEFAULTS)
            truths = true_regions(pairs)
            grid = MAP_GRID if args.split == "validation" else {k: (defaults[k],) for k in MAP_GRID}
            for noise_level, draws in itertools.product(*grid.values()):
                maps = run_batches(host, names, pairs, maps_only(with_relevance(
                    {**defaults, "noise_level": noise_level, "draws": draws}, True)))["relevance_save"]
                relevance = [as_map(m) for m in maps]
                thresholds, margins = ((MASK_GRID["threshold"], MASK_GRID["margin"]) if args.split == "validation"
                                       else ((defaults["threshold"],), (defaults["margin"],)))
                for threshold, margin in itertools.product(thresholds, margins):
                    setting = {"noise_level": noise_level, "draws": draws, "threshold": threshold, "margin": margin}
                    report["masks"][label(setting)] = {
                        "setting": setting, "iou": iou_by_kind(pairs, truths, relevance, threshold, margin)}
                log.info("masks at noise %s, %s draws done", noise_level, draws)
            unmasked = run_batches(host, names, pairs)["5"]
            report["edits"]["without a mask"] = edit_row(pairs, unmasked)
            mask_of = {}
            for name, truth in zip(names, truths):
                path = host.work_dir / "pairs" / f"truth_{name}"
                Image.fromarray(truth.astype(np.uint8) * 255).save(path)
                mask_of[name] = host.add_input(path)
            report["edits"]["oracle: the true region drawn as a mask"] = edit_row(
                pairs, run_batches(host, names, pairs, with_oracle(mask_of))["5"])
            for setting in choose_edit_settings(args.split, report["masks"]):
                saved = run_batches(host, names, pairs, with_relevance(setting, True))
                report["edits"][label(setting)] = edit_row(pairs, saved["5"])
                if args.split == "validation" and setting.get("while_sampling", True):
                    report["edits"][label({**setting, "while_sampling": False})] = edit_row(pairs, [
                        kept_outside(p.original, e, m) for p, e, m in zip(pairs, unmasked, saved["mask_save"])])
                log.info("%s: %s", label(setting), report["edits"][label(setting)]["overall"])
                if args.picture and setting == dict(DEFAULTS):
                    report["picture"] = picture(pairs, saved["mask_save"], unmasked, saved["5"], args.picture)
            report["cost"] = timing(host, probe, names[:args.timing_pairs], pairs[:args.timing_pairs], defaults,
                                    args.repeats)
    return report


def markdown(report: dict, command: str) -> str:
    kinds = [k for k in (*EDIT_KINDS, "overall") if k in report["edits"]["without a mask"]]
    lines = [f"Command: `{command}`; the first {report['pairs']} {report['split']} pairs; host: {report['host']}; "
             f"{report['machine']}; {report['total_seconds'] / 60:.0f} min in all. The node's defaults: "
             f"{label(report['defaults'])}.", "",
             "Edits: strict success / collateral MSE (where the instruction names nothing) / MSE ratio to the "
             "unchanged input, per kind; overall = the mean over kinds.", "",
             "| edit | " + " | ".join(kinds) + " |", "|---|" + "---|" * len(kinds)]

    def cell(summary: dict) -> str:
        collateral = "-" if summary["collateral_mse"] is None else f"{summary['collateral_mse']:.4f}"
        return f"{100 * summary['success']:.0f} % / {collateral} / {summary['ratio']:.2f}"

    for name, row in report["edits"].items():
        lines.append(f"| {name} | " + " | ".join(cell(row[k]) for k in kinds) + " |")
    ranked = sorted(report["masks"].values(), key=lambda row: -row["iou"]["overall"])
    lines += ["", f"Masks: IoU against the true changed region ({len(ranked)} settings, best first"
              + (", the first 12" if len(ranked) > 12 else "") + "):", "",
              "| mask | " + " | ".join(kinds) + " |", "|---|" + "---|" * len(kinds)]
    for row in ranked[:12]:
        lines.append(f"| {label(row['setting'])} | " + " | ".join(f"{row['iou'][k]:.2f}" for k in kinds) + " |")
    cost = report["cost"]
    lines += ["", f"Cost, one edit per prompt, {cost['prompts_per_path']} prompts per path, alternating: UNet passes "
              f"per edit {cost['passes']['edit alone']:.1f} alone, {cost['passes']['with the relevance mask']:.1f} "
              f"with the mask; median prompt seconds {cost['prompt_seconds']['edit alone']:.3f} alone, "
              f"{cost['prompt_seconds']['with the relevance mask']:.3f} with the mask: "
              f"**{cost['ratio']:.2f}x** the edit alone."]
    return "\n".join(lines) + "\n"


def options(parser) -> None:
    parser.add_argument("--split", choices=("validation", "test"), default="validation",
                        help="validation: where the node's defaults are chosen; test: where they are reported")
    parser.add_argument("--pairs", type=int, default=120)
    parser.add_argument("--timing-pairs", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--picture", type=Path, help="write input, mask, edits and target of a few pairs here")


if __name__ == "__main__":
    report_cli.main("relevance_quality", __doc__, options, run, markdown)
