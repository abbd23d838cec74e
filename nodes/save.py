"""IP2P Save Checkpoint: a made or merged IP2P model as one `.safetensors` file."""
import logging
import os
from pathlib import Path

import comfy.sd
import folder_paths

from ..ip2p_core.errors import IP2PUserError
from ..ip2p_core.output_names import free_path

log = logging.getLogger(__name__)
CHECKPOINTS = "checkpoints"


def save_folder(filename_prefix: str) -> tuple[Path, str, str]:
    """(folder, file name start, sub-folder of output/) for a prefix, which must stay inside output/checkpoints.

    A server reachable by others must not write where a prompt says: the prefix is resolved as
    ComfyUI's own save nodes resolve theirs (`folder_paths.get_save_image_path`, which refuses a
    path leading out of the folder), after checks that say what is wrong with it.
    """
    prefix = filename_prefix.strip()
    root = Path(folder_paths.get_output_directory()) / CHECKPOINTS
    if not prefix or prefix.endswith(("/", "\\")):
        raise IP2PUserError(f"filename_prefix '{filename_prefix}' names no file: give a name such as 'ip2p_model' "
                            "or 'my_models/ip2p_model'")
    if os.path.isabs(prefix) or os.path.splitdrive(prefix)[0]:
        raise IP2PUserError(f"filename_prefix '{filename_prefix}' is an absolute path: give a name inside "
                            f"output/{CHECKPOINTS}, such as 'ip2p_model' or 'my_models/ip2p_model'")
    if os.path.normpath(prefix).split(os.sep)[0] == os.pardir:
        raise IP2PUserError(f"filename_prefix '{filename_prefix}' leads out of output/{CHECKPOINTS}: the model is "
                            "saved only there; give a name such as 'ip2p_model' or 'my_models/ip2p_model'")
    folder, name, _, subfolder, _ = folder_paths.get_save_image_path(prefix, str(root))
    return Path(folder), name, str(Path(CHECKPOINTS) / subfolder)


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
                                           "tooltip": "File name start inside output/checkpoints; a sub-folder may "
                                                      "be given as 'folder/name'."}),
        }}

    def save(self, model, clip, vae, filename_prefix):
        folder, name, subfolder = save_folder(filename_prefix)
        path = free_path(folder, name, ".safetensors", always_numbered=True)
        comfy.sd.save_checkpoint(str(path), model, clip, vae, metadata={"modelspec.architecture": "instruct-pix2pix"})
        log.info("IP2P: saved %s", path)
        return {"ui": {"checkpoints": [{"filename": path.name, "subfolder": subfolder, "type": "output"}]}}
