"""Fewer UNet passes at the same edit, on the demo model's validation pairs (where the presets are chosen)
or its test pairs (where they are reported).

    python -m benchmarks.fewer_passes                       # the validation pairs: choosing the presets
    python -m benchmarks.fewer_passes --split test          # the test pairs: reporting them
    python -m benchmarks.fewer_passes --pairs 16 --timing-pairs 2 --out quick.md   # a quick look

Each setting of IP2P Fewer Passes (each technique alone, then combined; the rows that are the
node's presets say so) edits the same pairs as the pack's full three-pass edit, with the same
initial noise (Euler, "simple" scheduler, 20 steps, text_cfg 7.5, image_cfg 1.5, seed + i for
pair i): deterministic, so any difference from the full edit is the technique's. Per setting:

* UNet passes per edit: the predictions the UNet computed, counted per call inside the host by
  benchmarks/host_probe, and inside diffusers' pipeline by benchmarks/diffusers_worker's hooks on
  its UNet (a call of 3 predictions for 16 edits is 3 passes per edit; a step-cached pass counts
  as one although it runs only the shallow blocks);
* sampling-loop seconds per edit, one edit per prompt on the first --timing-pairs pairs, with
  ComfyUI's native DualCFGGuider + SamplerCustomAdvanced and diffusers'
  StableDiffusionInstructPix2PixPipeline (first UNet call to the last step) timed on the same
  pairs in the same run: the ratios are what to read, not the seconds;
* pixel MSE against the drawn target (and its ratio to the full edit's), overall and per edit
  kind, the success rate (benchmarks/demo_quality.py), and the largest pixel difference (0-255)
  from the full edit.

On the validation pairs every setting below is run (the presets are chosen among them); on the
test pairs only the full edit and the presets, whose figures are the report.
"""
from __future__ import annotations

import json
import logging
import statistics
import tempfile
from dataclasses import asdict
from pathlib import Path

from PIL import Image

from ip2p_core import demo_model
from ip2p_core.inference.fewer_passes import PRESETS, PassSaving
from tools.comfy_host import ComfyHost
from tools.demo_checkpoint import CACHE, checkpoint_file
from training.evaluate_edits import score, summarise
from training.synthetic_shapes import EDIT_KINDS, evaluation_pairs

from . import report_cli
from .demo_quality import (
    BATCH,
    IMAGE_CFG,
    SEED,
    STEPS,
    TEXT_CFG,
    diffusers_pipeline,
    held_out_inputs,
    largest_difference,
    native_single,
    pack_edits,
    saved,
)
from .diffusers_worker import edit as diffusers_edit

HERE = Path(__file__).resolve().parent
log = logging.getLogger("fewer_passes")
FULL = "full (three passes)"
# IP2P Fewer Passes (custom) inputs per setting; unset inputs keep the node's defaults (off).
SETTINGS: dict[str, dict] = {
    FULL: {},
    "text term to 0.3": {"text_end": 0.3},
    "text term to 0.5": {"text_end": 0.5},
    "text term to 0.7": {"text_end": 0.7},
    "image term to 0.5": {"image_end": 0.5},
    "image term from 0.5": {"image_start": 0.5},
    "both to 0.5": {"text_end": 0.5, "image_end": 0.5},
    "stop when agree 0.999": {"stop_when_agree": 0.999},
    "stop when agree 0.995": {"stop_when_agree": 0.995},
    "stop when agree 0.99": {"stop_when_agree": 0.99},
    "step cache 2": {"cache_interval": 2},
    "step cache 3": {"cache_interval": 3},
    # combined: the candidates for the presets
    "text to 0.5, step cache 2": {"text_end": 0.5, "cache_interval": 2},
    "both to 0.3": {"text_end": 0.3, "image_end": 0.3},
    "both to 0.3, step cache 2": {"text_end": 0.3, "image_end": 0.3, "cache_interval": 2},
    "agree 0.995, step cache 2": {"stop_when_agree": 0.995, "cache_interval": 2},
}


def settings_for(split: str) -> dict[str, dict]:
    """The rows of a run: every setting on the validation pairs (where the presets are chosen from
    them), the full edit and the presets on the test pairs (where the chosen presets are reported)."""
    if split == "validation":
        return SETTINGS
    return {FULL: {}, **{f"preset {name}": custom_inputs(saving) for name, saving in PRESETS.items()
                         if saving != PassSaving()}}


def custom_inputs(saving: PassSaving) -> dict:
    """IP2P Fewer Passes (custom) inputs that make `saving`."""
    return {"text_start": saving.text_range[0], "text_end": saving.text_range[1],
            "image_start": saving.image_range[0], "image_end": saving.image_range[1],
            "stop_when_agree": saving.agreement, "cache_interval": saving.cache_interval,
            "cache_depth": saving.cache_depth}


DEFAULTS = custom_inputs(PassSaving())  # the node's inputs that skip nothing


def named_setting(name: str) -> dict | None:
    """IP2P Fewer Passes (custom) inputs for a preset's name or a SETTINGS name; None for neither."""
    if name in PRESETS:
        return custom_inputs(PRESETS[name])
    return {**DEFAULTS, **SETTINGS[name]} if name in SETTINGS else None


def preset_of(inputs: dict | None) -> str:
    """' (preset NAME)' when `inputs` are what an IP2P Fewer Passes preset sets."""
    names = [name for name, saving in PRESETS.items() if inputs is not None
             and custom_inputs(saving) == {**DEFAULTS, **inputs}]
    return f" (preset {names[0]})" if names else ""


def with_setting(inputs: dict) -> dict:
    """pack_batch arguments that feed IP2P Fewer Passes (custom) with `inputs` to the sampler."""
    if not inputs:
        return {}
    node = {"class_type": "IP2PFewerPassesCustom", "inputs": {**DEFAULTS, **inputs}}
    return {"nodes": {"fp": node}, "sampler_inputs": {"fewer_passes": ["fp", 0]}}


class Probe:
    """The host_probe's records (one line per sampling loop), read as they come."""

    def __init__(self, path: Path):
        self.path, self.seen = path, 0

    def new_records(self) -> list[dict]:
        lines = self.path.read_text().splitlines() if self.path.exists() else []
        records = [json.loads(line) for line in lines[self.seen:]]
        self.seen = len(lines)
        return records

    def new_loops(self) -> list[dict]:
        return [r for r in self.new_records() if "loop_seconds" in r]


def passes_per_edit(loops: list[dict], edits_per_loop: list[int]) -> float:
    """UNet passes per edit: each call's batch divided by the edits it served."""
    return sum(sum(batch for batch, _ in loop["model_calls"]) / edits
               for loop, edits in zip(loops, edits_per_loop)) / len(loops)


def run(args) -> dict:
    pairs = evaluation_pairs(args.split, args.pairs, demo_model.IMAGE_SIZE)
    timed = pairs[:args.timing_pairs]
    checkpoint = checkpoint_file(CACHE)
    report: dict = {"split": args.split, "pairs": len(pairs), "timing_pairs": len(timed), "settings": {}}
    with tempfile.TemporaryDirectory(prefix="fewer-passes-") as work:
        probe = Probe(Path(work) / "timings.jsonl")
        host = ComfyHost(work, env={"IP2P_BENCH_TIMINGS": str(probe.path)})
        (host.custom_nodes_dir / "ip2p_bench_probe").symlink_to(HERE / "host_probe", target_is_directory=True)
        with host:
            names, file_name = held_out_inputs(host, pairs, checkpoint)
            report["host"] = host.kind
            full = None
            batches = [min(BATCH, len(pairs) - i) for i in range(0, len(pairs), BATCH)]
            for name, inputs in settings_for(args.split).items():
                edits = pack_edits(host, names, pairs, **with_setting(inputs))
                loops = probe.new_loops()
                scores = [score(p, e) for p, e in zip(pairs, edits)]
                pack_edits(host, names[:len(timed)], timed, batch=1, **with_setting(inputs))
                timing = probe.new_loops()
                full = full or edits
                report["settings"][name] = {
                    "passes": passes_per_edit(loops, batches),
                    "loop_seconds": statistics.median(loop["loop_seconds"] for loop in timing),
                    "all": asdict(summarise(scores)),
                    "kinds": {kind: summarise([s for s in scores if s.kind == kind]).mse for kind in EDIT_KINDS
                              if any(s.kind == kind for s in scores)},
                    "largest_difference": largest_difference(full, edits),
                }
                log.info("%s: %s", name, report["settings"][name])
            guider_inputs = set(host.object_info("DualCFGGuider")["input"]["required"])
            native = [saved(host, host.run(native_single(file_name, name, pair.instruction, SEED + index,
                                                         guider_inputs)))[0]
                      for index, (name, pair) in enumerate(zip(names, timed))]
            loops = probe.new_loops()
            report["references"] = {"native": reference(loops, passes_per_edit(loops, [1] * len(loops)), native,
                                                        full)}
    pipe = diffusers_pipeline(checkpoint)
    with tempfile.TemporaryDirectory(prefix="fewer-passes-diffusers-") as out:
        results = []
        for index, pair in enumerate(timed):
            image = Path(out) / f"pair{index}.png"
            pair.original.save(image)
            results.append(diffusers_edit(pipe, {"image": str(image), "prompt": pair.instruction, "seed": SEED + index,
                                                 "steps": STEPS, "text_cfg": TEXT_CFG, "image_cfg": IMAGE_CFG,
                                                 "out_dir": out, "tag": str(index)}))
        edits = [Image.open(r["image"]).convert("RGB") for r in results]
        passes = passes_per_edit(results, [1] * len(results))  # one edit per pipeline call
        report["references"]["diffusers"] = reference(results, passes, edits, full)
    return report


def reference(loops: list[dict], passes: float, edits: list, full: list) -> dict:
    """A reference path's row, timed on the timing pairs: its edits against the pack's full edit."""
    return {"passes": passes, "loop_seconds": statistics.median(loop["loop_seconds"] for loop in loops),
            "largest_difference": largest_difference(full[:len(edits)], edits)}


def markdown(report: dict, command: str) -> str:
    full = report["settings"][FULL]
    seconds = {"diffusers": report["references"]["diffusers"]["loop_seconds"],
               "native": report["references"]["native"]["loop_seconds"], "full": full["loop_seconds"]}
    lines = [f"Command: `{command}`; the first {report['pairs']} {report['split']} pairs, {STEPS} steps Euler, "
             f"text_cfg {TEXT_CFG}, image_cfg {IMAGE_CFG}; seconds: median sampling loop per edit over the first "
             f"{report['timing_pairs']} pairs, one edit per prompt; host: {report['host']}; {report['machine']}; "
             f"{report['total_seconds'] / 60:.0f} min in all.", "",
             "| setting | passes per edit | loop s per edit | x diffusers | x native | x full edit | MSE vs target "
             "| x full edit's | success | largest difference from the full edit |",
             "|---|---|---|---|---|---|---|---|---|---|"]

    def timing(r: dict) -> str:
        ratios = " | ".join(f"{r['loop_seconds'] / seconds[path]:.2f}" for path in ("diffusers", "native", "full"))
        return f"{r['passes']:.1f} | {r['loop_seconds']:.3f} | {ratios}"

    for name, r in report["references"].items():
        lines.append(f"| {name} (reference) | {timing(r)} | - | - | - | {r['largest_difference']} (timing pairs) |")
    for name, r in report["settings"].items():
        mse, success = r["all"]["mse"], r["all"]["success"]
        quality = f"{mse:.4f} | {mse / full['all']['mse']:.3f} | {100 * success:.0f} %"
        lines.append(f"| {name}{preset_of(SETTINGS.get(name))} | {timing(r)} | {quality} | {r['largest_difference']} |")
    kinds = list(report["settings"][FULL]["kinds"])
    lines += ["", "MSE against the target per edit kind, as a ratio to the full edit's:", "",
              "| setting | " + " | ".join(kinds) + " |", "|---|" + "---|" * len(kinds)]
    for name, r in report["settings"].items():
        base = report["settings"][FULL]["kinds"]
        lines.append(f"| {name} | " + " | ".join(f"{r['kinds'][k] / base[k]:.3f}" for k in kinds) + " |")
    return "\n".join(lines) + "\n"


def options(parser) -> None:
    parser.add_argument("--pairs", type=int, default=80)
    parser.add_argument("--split", choices=("validation", "test"), default="validation",
                        help="validation: where the presets are chosen; test: where they are reported")
    parser.add_argument("--timing-pairs", type=int, default=6)


if __name__ == "__main__":
    report_cli.main("fewer_passes", __doc__, options, run, markdown)
