"""The inputs the sampling nodes share (IP2P Guider, IP2P Sampler, IP2P Invert), defined once."""
import comfy.samplers

TEXT_CFG = ("FLOAT", {"default": 7.5, "min": 0.0, "max": 100.0, "step": 0.1, "round": 0.01,
                      "tooltip": "How strongly to follow the instruction. Higher = stronger edit (paper: 7.5). "
                                 "0 skips the instruction's prediction."})
IMAGE_CFG = ("FLOAT", {"default": 1.5, "min": 0.0, "max": 100.0, "step": 0.05, "round": 0.01,
                       "tooltip": "How closely to keep the input image. Higher = more faithful, weaker edit "
                                  "(paper: 1.5; typical 1.0 to 2.0). 1 skips the unconditional prediction."})
MODEL_AND_CONDITIONINGS = {
    "model": ("MODEL", {"tooltip": "An InstructPix2Pix model, e.g. from IP2P Checkpoint Loader."}),
    "positive": ("CONDITIONING", {"tooltip": "From IP2P Encode: the instruction with the image."}),
    "negative": ("CONDITIONING", {"tooltip": "From IP2P Encode: the negative text with the image."}),
}
GUIDANCE_OPTIONS = {
    "text_cfg_schedule": ("IP2P_CFG_SCHEDULE", {"tooltip": "Optional: per-step text scales from an IP2P Guidance "
                                                           "Schedule node; replaces text_cfg."}),
    "image_cfg_schedule": ("IP2P_CFG_SCHEDULE", {"tooltip": "Optional: per-step image scales from an IP2P Guidance "
                                                            "Schedule node; replaces image_cfg."}),
    "guidance_rescale": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1.0, "step": 0.05,
                                   "tooltip": "Rescales the guided prediction's spread to the instruction "
                                              "prediction's (Lin et al.) against over-saturation at high text_cfg. "
                                              "0 = off; 0.7 is typical."}),
    "fewer_passes": ("IP2P_FEWER_PASSES", {"tooltip": "Optional: from an IP2P Fewer Passes node, guidance terms "
                                                      "that are skipped in parts of the schedule and step caching. "
                                                      "Unconnected = all three predictions at every step."}),
}


def run_inputs() -> dict:
    """steps, sampler_name, scheduler and denoise as the IP2P Sampler takes them: the sampler run
    (read when a node's inputs are asked for, so samplers that packs register are listed)."""
    return {
        "steps": ("INT", {"default": 20, "min": 1, "max": 10000,
                          "tooltip": "Denoising steps (paper: 100; 20 to 50 is usually enough)."}),
        "sampler_name": (comfy.samplers.KSampler.SAMPLERS, {
            "default": "euler_ancestral", "tooltip": "Any ComfyUI sampler (paper: Euler ancestral)."}),
        "scheduler": (comfy.samplers.KSampler.SCHEDULERS, {"default": "normal", "tooltip": "Any ComfyUI scheduler."}),
        "denoise": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01,
                              "tooltip": "1 = full edit from noise. Below 1 starts from the input image and "
                                         "changes it less."}),
    }
