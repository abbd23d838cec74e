"""IP2P Save Checkpoint: a made or merged IP2P model as one `.safetensors` file."""
import logging
from pathlib import Path

import comfy.sd
import folder_paths

log = logging.getLogger(__name__)


def free_path(folder: Path, prefix: str) -> Path:
    """`prefix_00001.safetensors`, or the next number free: an existing file is never overwritten."""
    folder.mkdir(parents=True, exist_ok=True)
    n = 1
    while (folder / f"{prefix}_{n:05d}.safetensors").exists():
        n += 1
    return folder / f"{prefix}_{n:05d}.safetensors"


class IP2PSaveCheckpoint:
    DESCRIPTION = ("Saves MODEL, CLIP and VAE as a single-file checkpoint in output/checkpoints, loadable by "
                   "ComfyUI's Load Checkpoint and by IP2P Checkpoint Loader. Never overwrites a file: it numbers them.")
    CATEGORY = "InstructPix2Pix/model making"
    RETURN_TYPES = ()
    OUTPUT_NODE = True
    FUNCTION = "save"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": ("MODEL", {"tooltip": "The IP2P model to save (e.g. from IP2P Add Difference)."}),
            "clip": ("CLIP", {"tooltip": "Its text encoder."}),
            "vae": ("VAE", {"tooltip": "Its VAE."}),
            "filename_prefix": ("STRING", {"default": "ip2p_model",
                                           "tooltip": "File name start; a sub-folder may be given as 'folder/name'."}),
        }}

    def save(self, model, clip, vae, filename_prefix):
        prefix = Path(filename_prefix)
        folder = Path(folder_paths.get_output_directory()) / "checkpoints" / prefix.parent
        path = free_path(folder, prefix.name)
        comfy.sd.save_checkpoint(str(path), model, clip, vae, metadata={"modelspec.architecture": "instruct-pix2pix"})
        log.info("IP2P: saved %s", path)
        return {"ui": {"checkpoints": [{"filename": path.name, "subfolder": str(Path("checkpoints") / prefix.parent),
                                        "type": "output"}]}}
