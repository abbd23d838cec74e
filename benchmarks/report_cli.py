"""The command line the quality benchmarks share: their own options, the run (timed, with the
machine it ran on), then the Markdown table (printed, and written with --out) and the full
report as JSON (--json), so that RESULTS.md quotes a command anyone can rerun."""
from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import time
from pathlib import Path
from typing import Callable

import torch


def main(module: str, doc: str, options: Callable[[argparse.ArgumentParser], None],
         run: Callable[[argparse.Namespace], dict], markdown: Callable[[dict, str], str],
         argv: list[str] | None = None) -> None:
    """`python -m benchmarks.<module>`: `options` adds the benchmark's own arguments, `run` makes
    the report and `markdown` writes it, headed by the command line that made it."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    options(parser)
    parser.add_argument("--out", type=Path, help="write the Markdown report here (default: print it)")
    parser.add_argument("--json", type=Path, help="write the full report as JSON here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    started = time.perf_counter()
    report = run(args)
    report["total_seconds"] = time.perf_counter() - started
    report["machine"] = f"{platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}"
    text = markdown(report, " ".join(["python", "-m", f"benchmarks.{module}", *(argv or sys.argv[1:])]))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    if args.out:
        args.out.write_text(text)
    sys.stdout.write(text)
