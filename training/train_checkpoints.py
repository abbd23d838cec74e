"""Training checkpoints: enough to resume a run exactly where it stopped.

A checkpoint holds the UNet, the optimiser, the EMA weights and the step. Batches and noise
are drawn from generators seeded by (seed, step), so a resumed run continues with the same
draws an uninterrupted one would have made. Checkpoints are written to a temporary folder
and renamed, so a run killed while saving keeps its previous checkpoint intact.
"""
from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Optional

import torch
from safetensors.torch import load_file, save_file

from ip2p_core.errors import IP2PUserError
from ip2p_core.formats.checkpoint_info import IP2P_IN_CHANNELS

CHECKPOINTS = "checkpoints"
PREFIX = "step-"
UNET_FILE = "unet.safetensors"
STATE_FILE = "state.json"
OPTIMIZER_FILE = "optimizer.pt"
EMA_FILE = "ema.pt"


def save_checkpoint(output: Path, step: int, unet: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    ema=None, keep: int = 2) -> Path:
    """Writes `output/checkpoints/step-<step>` and keeps only the newest `keep` checkpoints."""
    folder = Path(output) / CHECKPOINTS
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"{PREFIX}{step:08d}"
    tmp = Path(tempfile.mkdtemp(prefix=".saving-", dir=folder))
    save_file({k: v.detach().cpu().contiguous() for k, v in unet.state_dict().items()}, str(tmp / UNET_FILE))
    torch.save(optimizer.state_dict(), tmp / OPTIMIZER_FILE)
    if ema is not None:
        torch.save(ema.state_dict(), tmp / EMA_FILE)
    (tmp / STATE_FILE).write_text(json.dumps({"step": step, "ema": ema is not None}))
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
    for old in sorted(folder.glob(f"{PREFIX}*"))[:-keep]:
        shutil.rmtree(old)
    return final


def latest_checkpoint(output: Path) -> Optional[Path]:
    found = sorted((Path(output) / CHECKPOINTS).glob(f"{PREFIX}*"))
    return found[-1] if found else None


def resolve_resume(resume: str, output: Path) -> Path:
    """`latest` (the newest checkpoint of this output folder) or a checkpoint folder."""
    path = latest_checkpoint(output) if resume == "latest" else Path(resume)
    if path is None:
        raise IP2PUserError(f"--resume latest: {Path(output) / CHECKPOINTS} holds no checkpoint yet")
    if not (path / STATE_FILE).is_file() or not (path / UNET_FILE).is_file():
        raise IP2PUserError(f"--resume {resume}: {path} is not a training checkpoint (no {STATE_FILE} and {UNET_FILE})")
    return path


def load_checkpoint(path: Path, unet: torch.nn.Module, optimizer: torch.optim.Optimizer, ema=None) -> int:
    """Restores the UNet, optimiser and EMA from `path`; returns the step to continue from."""
    weights = load_file(str(path / UNET_FILE))
    conv_in = weights.get("conv_in.weight")
    if conv_in is None or conv_in.shape[1] != IP2P_IN_CHANNELS:
        channels = "no conv_in" if conv_in is None else f"a {conv_in.shape[1]}-channel conv_in"
        raise IP2PUserError(f"cannot resume from {path}: its UNet has {channels}, but this run trains an "
                            f"InstructPix2Pix UNet with {IP2P_IN_CHANNELS} input channels. Resume from a "
                            "checkpoint of an IP2P run, or start a new run with --model")
    unet.load_state_dict(weights)
    optimizer.load_state_dict(torch.load(path / OPTIMIZER_FILE, map_location="cpu", weights_only=True))
    state = json.loads((path / STATE_FILE).read_text())
    if ema is not None:
        if not state["ema"]:
            raise IP2PUserError(f"cannot resume with --ema from {path}: that run kept no EMA weights")
        ema.load_state_dict(torch.load(path / EMA_FILE, map_location="cpu", weights_only=True))
    return int(state["step"])
