"""Does starting from the input's inverted noise keep the picture? The demo model's test pairs.

    python -m benchmarks.inversion_quality                  # the tables in benchmarks/RESULTS.md
    python -m benchmarks.inversion_quality --pairs 16 --round-trip-pairs 4 --out quick.md   # a quick look

Through the pack's nodes in a real host (Euler, "simple" scheduler, text_cfg 7.5, image_cfg 1.5):

* round trip: IP2P Invert, then the IP2P Sampler with an empty instruction and the same sigmas,
  against the input (PSNR over the whole picture), at several step counts, beside the same
  empty-instruction edit from random noise;
* edits: each pair edited from random noise (seed + i) and from its inverted noise, 20 steps:
  the PSNR, against the input, of the region the instruction should not change (local edits
  only: global ones change everything), the success rate (benchmarks/demo_quality.py) and the
  MSE against the drawn target, per edit kind.
"""
from __future__ import annotations

import logging
import math
import tempfile

import numpy as np

from ip2p_core import demo_model
from tools.comfy_host import ComfyHost
from tools.demo_checkpoint import CACHE, checkpoint_file
from training.evaluate_edits import score, summarise
from training.synthetic_shapes import EDIT_KINDS, evaluation_pairs

from . import report_cli
from .demo_quality import IMAGE_CFG, SPLIT, STEPS, held_out_inputs, pack_edits

log = logging.getLogger("inversion_quality")
ROUND_TRIP_STEPS = (10, 20, 50)


def inverted(steps: int = STEPS) -> dict:
    """pack_batch arguments: IP2P Invert (same steps, sampler, scheduler) feeding the sampler's noise."""
    node = {"class_type": "IP2PInvert", "inputs": {
        "model": ["1", 0], "positive": ["2", 0], "negative": ["2", 1], "steps": steps, "image_cfg": IMAGE_CFG,
        "sampler_name": "euler", "scheduler": "simple", "denoise": 1.0}}
    return {"nodes": {"inv": node}, "sampler_inputs": {"noise": ["inv", 0], "steps": steps}}


def psnr(mse: float) -> float:
    return 10.0 * math.log10(1.0 / mse) if mse > 0 else float("inf")


def whole_psnr(pairs, edits) -> float:
    mse = np.mean([np.mean((np.asarray(e, float) / 255 - np.asarray(p.original, float) / 255) ** 2)
                   for p, e in zip(pairs, edits)])
    return psnr(float(mse))


def empty_instruction(graph: dict) -> dict:
    graph["2"]["inputs"].update(instruction="", one_instruction_per_line=False)
    return graph


def run(args) -> dict:
    pairs = evaluation_pairs(SPLIT, args.pairs, demo_model.IMAGE_SIZE)
    trip = pairs[:args.round_trip_pairs]
    report: dict = {"pairs": len(pairs), "round_trip_pairs": len(trip), "round_trip": [], "edits": {}}
    with tempfile.TemporaryDirectory(prefix="inversion-") as work, ComfyHost(work) as host:
        names, _ = held_out_inputs(host, pairs, checkpoint_file(CACHE))
        report["host"] = host.kind
        for steps in ROUND_TRIP_STEPS:
            row = {"steps": steps}
            for start, settings in (("random", {"sampler_inputs": {"steps": steps}}), ("inverted", inverted(steps))):
                edits = pack_edits(host, names[:len(trip)], trip, graph_hook=empty_instruction, **settings)
                row[start] = whole_psnr(trip, edits)
            report["round_trip"].append(row)
            log.info("round trip %s", row)
        for start, settings in (("random", {}), ("inverted", inverted())):
            scores = [score(p, e) for p, e in zip(pairs, pack_edits(host, names, pairs, **settings))]
            kinds = {}
            for kind in (*EDIT_KINDS, "all"):
                chosen = [s for s in scores if kind in ("all", s.kind)]
                if chosen:
                    summary = summarise(chosen)
                    kinds[kind] = {"pairs": summary.pairs, "success": summary.success, "mse": summary.mse,
                                   "untouched_psnr": None if summary.collateral_mse is None
                                   else psnr(summary.collateral_mse)}
            report["edits"][start] = kinds
            log.info("%s: %s", start, kinds["all"])
    return report


def markdown(report: dict, command: str) -> str:
    lines = [f"Command: `{command}`; host: {report['host']}; {report['machine']}; "
             f"{report['total_seconds'] / 60:.0f} min in all.", "",
             f"Round trip on the first {report['round_trip_pairs']} pairs (empty instruction, image_cfg {IMAGE_CFG}, "
             "Euler): PSNR (dB) of the result against the input.", "",
             "| steps | from random noise | from the inverted noise |", "|---|---|---|"]
    lines += [f"| {r['steps']} | {r['random']:.1f} | {r['inverted']:.1f} |" for r in report["round_trip"]]
    lines += ["", f"Edits of the first {report['pairs']} {SPLIT} pairs ({STEPS} steps): PSNR (dB) against the input where the "
                  "instruction changes nothing, success rate, MSE against the target.", "",
              "| edit kind | pairs | untouched PSNR, random | inverted | success, random | inverted | "
              "MSE, random | inverted |", "|---|---|---|---|---|---|---|---|"]
    random, inv = report["edits"]["random"], report["edits"]["inverted"]
    show = lambda v: "-" if v is None else f"{v:.1f}"  # noqa: E731
    for kind in random:
        r, i = random[kind], inv[kind]
        lines.append(f"| {kind} | {r['pairs']} | {show(r['untouched_psnr'])} | {show(i['untouched_psnr'])} | "
                     f"{100 * r['success']:.0f} % | {100 * i['success']:.0f} % | {r['mse']:.4f} | {i['mse']:.4f} |")
    return "\n".join(lines) + "\n"


def options(parser) -> None:
    parser.add_argument("--pairs", type=int, default=120)
    parser.add_argument("--round-trip-pairs", type=int, default=16)


if __name__ == "__main__":
    report_cli.main("inversion_quality", __doc__, options, run, markdown)
