"""Could IP2P Relevance Mask tell a global edit from a local one, and then edit the whole picture?

    python -m benchmarks.relevance_whole_picture            # the validation pairs: where a rule would be chosen

With a relevance mask, night edits lose (the map is uneven over a night picture, part of it is
masked out, and the edit inside no longer fits the kept outside). A rule would look at each
picture's relevance and, where it says "global", drop the mask (the edit then equals the unmasked
one). This measures, on the demo model through the pack's nodes in a real host (the node's
defaults, 20 steps Euler, text_cfg 7.5, image_cfg 1.5, the noise of seed + i for pair i):

* per edit kind, the statistics such a rule could read: the mask's share of the picture, and the
  share of the picture whose relevance is at least 0.2 and 0.3 (median, smallest, largest);
* the unmasked edit, the masked edit, and for each statistic and cut-off the mix "unmasked where
  the statistic is above the cut-off, masked elsewhere", which is exact per pair: strict success
  and collateral MSE per kind; the best mix by the issue's goal (least collateral with success at
  most 2 points under the unmasked edit's), else the most successful.
"""
from __future__ import annotations

import tempfile

import numpy as np
import torch

from ip2p_core import demo_model
from ip2p_core.inference.relevance import DEFAULTS
from tools.comfy_host import ComfyHost
from tools.demo_checkpoint import CACHE, checkpoint_file
from training.evaluate_edits import score, summarise_by_kind
from training.synthetic_shapes import EDIT_KINDS, evaluation_pairs

from . import report_cli
from .demo_quality import held_out_inputs
from .relevance_quality import as_map, label, maps_only, run_batches, with_relevance

CUT_OFFS = tuple(np.round(np.arange(0.3, 1.0, 0.05), 2))
LEVELS = (0.2, 0.3)
GOAL_POINTS = 0.02  # the bound on lost success


def statistics_of(relevance: np.ndarray, masks: np.ndarray) -> dict[str, np.ndarray]:
    """Per picture, what a whole-picture rule could read."""
    found = {"the mask's share of the picture": (masks >= 0.5).mean(axis=(1, 2))}
    for level in LEVELS:
        found[f"share with relevance >= {level}"] = (relevance >= level).mean(axis=(1, 2))
    return found


def summary(scores: list) -> dict:
    return {kind: {"success": s.success, "collateral_mse": s.collateral_mse}
            for kind, s in summarise_by_kind(scores).items()}


def run(args) -> dict:
    pairs = evaluation_pairs(args.split, args.pairs, demo_model.IMAGE_SIZE)
    kinds = [p.edit.kind for p in pairs]
    with tempfile.TemporaryDirectory(prefix="relevance-whole-") as work, ComfyHost(work) as host:
        names, _ = held_out_inputs(host, pairs, checkpoint_file(CACHE))
        relevance = np.stack([as_map(m).numpy() for m in run_batches(
            host, names, pairs, maps_only(with_relevance(dict(DEFAULTS), True)))["relevance_save"]])
        unmasked = [score(p, e) for p, e in zip(pairs, run_batches(host, names, pairs)["5"])]
        saved = run_batches(host, names, pairs, with_relevance(dict(DEFAULTS), True))
        masked = [score(p, e) for p, e in zip(pairs, saved["5"])]
        masks = np.stack([as_map(m).numpy() for m in saved["mask_save"]])
    found = statistics_of(relevance, masks)
    report = {"split": args.split, "pairs": len(pairs), "setting": label(DEFAULTS), "statistics": {
        name: {kind: [float(np.median(v)), float(v.min()), float(v.max())] for kind in EDIT_KINDS
               if (v := values[[k == kind for k in kinds]]).size} for name, values in found.items()},
        "edits": {"without a mask": summary(unmasked), "with the mask": summary(masked)}, "rules": []}
    for name, values in found.items():
        for cut_off in CUT_OFFS:
            mixed = [u if value > cut_off else m for u, m, value in zip(unmasked, masked, values)]
            report["rules"].append({"statistic": name, "cut_off": float(cut_off), **summary(mixed)})
    return report


def best_rule(rules: list[dict], unmasked_success: float) -> dict:
    """The issue's goal as a rule: the least collateral within GOAL_POINTS of the unmasked edit's
    success; where none is, the most successful."""
    within = [r for r in rules if r["overall"]["success"] >= unmasked_success - GOAL_POINTS]
    return (min(within, key=lambda r: r["overall"]["collateral_mse"]) if within
            else max(rules, key=lambda r: r["overall"]["success"]))


def markdown(report: dict, command: str) -> str:
    kinds = [k for k in (*EDIT_KINDS, "overall") if k in report["edits"]["without a mask"]]
    base = report["edits"]["without a mask"]["overall"]["collateral_mse"]
    lines = [f"Command: `{command}`; the first {report['pairs']} {report['split']} pairs; the node's defaults "
             f"({report['setting']}); {report['machine']}; {report['total_seconds'] / 60:.0f} min in all.", "",
             "What a rule could read, per kind: median (smallest-largest) over the pairs.", "",
             "| statistic | " + " | ".join(kinds[:-1]) + " |", "|---|" + "---|" * (len(kinds) - 1)]
    for name, by_kind in report["statistics"].items():
        lines.append(f"| {name} | " + " | ".join(f"{m:.2f} ({lo:.2f}-{hi:.2f})" for m, lo, hi in
                                                 (by_kind[k] for k in kinds[:-1])) + " |")

    def row(title: str, result: dict) -> str:
        cells = []
        for kind in kinds:
            collateral = result[kind]["collateral_mse"]
            cells.append(f"{100 * result[kind]['success']:.0f} % / " + ("-" if collateral is None else
                                                                        f"{collateral:.4f}"))
        return f"| {title} | " + " | ".join(cells) + f" | {result['overall']['collateral_mse'] / base:.2f}x |"

    lines += ["", "Edits: strict success / collateral MSE per kind; the last column is the collateral as a "
              "ratio to the unmasked edit's. For each statistic, the cut-off with the least collateral within "
              f"{100 * GOAL_POINTS:.0f} points of the unmasked edit's success (else the most successful):", "",
              "| edit | " + " | ".join(kinds) + " | collateral vs. unmasked |", "|---|" + "---|" * (len(kinds) + 1)]
    for title, result in report["edits"].items():
        lines.append(row(title, result))
    for name in report["statistics"]:
        best = best_rule([r for r in report["rules"] if r["statistic"] == name],
                         report["edits"]["without a mask"]["overall"]["success"])
        lines.append(row(f"no mask where {name} > {best['cut_off']:.2f}", best))
    return "\n".join(lines) + "\n"


def options(parser) -> None:
    parser.add_argument("--split", choices=("validation", "test"), default="validation")
    parser.add_argument("--pairs", type=int, default=120)


if __name__ == "__main__":
    torch.set_num_threads(1)
    report_cli.main("relevance_whole_picture", __doc__, options, run, markdown)
