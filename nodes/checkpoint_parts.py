"""A single-file checkpoint's text encoder and VAE, built by the host from a model config.

What ComfyUI's own checkpoint loader does after it has detected the model; the pack calls it
where it chose the config itself (UltraEdit) or where the 2024 host cannot load from memory.
"""
import comfy.sd
import comfy.utils


def clip_and_vae(config, state: dict, embedding_directory):
    """CLIP and VAE of the checkpoint `state` (all its keys, prefixed as in the file) for `config`."""
    vae_weights = comfy.utils.state_dict_prefix_replace(state, {k: "" for k in config.vae_key_prefix},
                                                        filter_keys=True)
    vae = comfy.sd.VAE(sd=config.process_vae_state_dict(vae_weights))
    clip = comfy.sd.CLIP(config.clip_target(state_dict=state), embedding_directory=embedding_directory)
    clip.load_sd(config.process_clip_state_dict(state), full_model=True)
    return clip, vae
