"""IP2P Relevance Mask: the model says where the instruction's edit belongs, and the edit stays there.

Between IP2P Encode and the sampler: the model is asked, at one noise level and for a few noise
draws, for its prediction with the instruction and without it (ip2p_core/inference/relevance.py);
where they differ is the edit's region. The conditionings and latent come out as IP2P Encode's
with that mask, so the sampler edits inside it and IP2P Decode keeps the input's exact pixels
outside it, the same path a drawn mask takes (with while_sampling off, IP2P Decode alone applies it).
"""
import logging

import comfy.samplers
import torch

from ..ip2p_core.inference.framing import LATENT_STRIDE, Framing, unframe
from ..ip2p_core.inference.relevance import (
    DEFAULTS,
    noise_draws,
    noise_level_percent,
    prediction_difference,
    relevance_map,
    relevance_mask,
    to_pixels,
)
from . import host
from .conditioning import DECODE_ONLY_KEY, FRAMING_KEY, MASK_KEY, image_latent, option, with_values
from .guider import DualCFGGuider, make_guider
from .sampler import edit_batch_size
from .sampling_inputs import MODEL_AND_CONDITIONINGS

log = logging.getLogger(__name__)
RESULTS = "benchmarks/RESULTS.md, 'Relevance masks on the demo model'"


class RelevanceProbe(DualCFGGuider):
    """The edit's guider (same model set-up and conditionings), asked at each call for the two
    predictions the relevance compares, instruction + image and image only, in one UNet batch."""

    differences: list

    def predict_noise(self, x, timestep, model_options=None, seed=None):
        conds = [self.conds["positive"], self.conds["image"], None]
        full, image_only, _ = self._predict(conds, x, timestep, {} if model_options is None else model_options)
        self.differences.append(prediction_difference(full, image_only, timestep).cpu())
        return full


class IP2PRelevanceMask:
    DESCRIPTION = ("Finds where the instruction's edit belongs from the model's own predictions (with and without "
                   "the instruction, 'Watch Your Steps'), and limits the edit to there: the IP2P Sampler edits inside "
                   "the mask and IP2P Decode returns the input's exact pixels outside it. Goes between IP2P Encode "
                   "and the sampler; also outputs the mask, to preview or combine with ComfyUI's mask nodes. For local "
                   "edits: leave it out for edits of the whole picture (night, a season, a style), which it clips. "
                   f"What it keeps and what it costs is measured in {RESULTS}.")
    CATEGORY = "InstructPix2Pix/conditioning"
    RETURN_TYPES = ("CONDITIONING", "CONDITIONING", "LATENT", "MASK", "MASK")
    RETURN_NAMES = ("positive", "negative", "latent", "mask", "relevance")
    OUTPUT_TOOLTIPS = (
        "The instruction with the image and the mask: connect to the IP2P Sampler's positive.",
        "The negative with the image and the mask: connect to the IP2P Sampler's negative.",
        "For SamplerCustomAdvanced with the IP2P Guider: the image's latent with the mask as its noise_mask.",
        "Where the edit may change the picture (one per edit, at the input's size): preview it, or grow, invert "
        "or combine it with ComfyUI's mask nodes and give it to IP2P Encode's mask.",
        "The relevance before the threshold (0 to 1, one per edit, at the input's size): to see what a threshold "
        "would keep.",
    )
    FUNCTION = "relevance"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            **MODEL_AND_CONDITIONINGS,
            "threshold": ("FLOAT", {"default": DEFAULTS["threshold"], "min": 0.01, "max": 1.0, "step": 0.01,
                                    "tooltip": "How relevant (0 to 1, the most relevant place = 1) a place must be "
                                               "to be edited. Raising it edits less of the picture; too high, and "
                                               "part of the named object stays unedited. Default chosen in "
                                               f"{RESULTS}."}),
            "margin": ("INT", {"default": DEFAULTS["margin"], "min": 0, "max": 256,
                               "tooltip": "Grows the mask by this many pixels, so the edit's border and a shape's "
                                          "edge are inside it. Raising it edits more around the named place."}),
        }, "optional": {
            "while_sampling": ("BOOLEAN", {"default": DEFAULTS["while_sampling"],
                                           "tooltip": "On: the sampler edits only inside the mask, blending the "
                                                      "edit into the kept outside (as a drawn mask does). Off: the "
                                                      "edit is made on the whole picture and IP2P Decode puts the "
                                                      "input's pixels back outside the mask, so the inside is "
                                                      f"exactly the unmasked edit. Default chosen in {RESULTS}."}),
            "feather": ("INT", {"default": DEFAULTS["feather"], "min": 0, "max": 256,
                                "tooltip": "Softens the mask's border by about this many pixels, for a seamless "
                                           "blend; 0 keeps a hard border."}),
            "noise_level": ("FLOAT", {"default": DEFAULTS["noise_level"], "min": 0.05, "max": 1.0, "step": 0.05,
                                      "tooltip": "The noise level the predictions are compared at, as a fraction of "
                                                 "the model's training noise (paper: 0.8). Lower looks at details, "
                                                 "higher at the layout."}),
            "draws": ("INT", {"default": DEFAULTS["draws"], "min": 1, "max": 64,
                              "tooltip": "Noise draws averaged: more gives a steadier map. Each costs two UNet "
                                         "predictions (one call), against three per step of the edit."}),
            "seed": ("INT", {"default": 0, "min": 0, "max": 0xffffffffffffffff,
                             "tooltip": "Seed of the noise draws: the same seed and settings give the same mask."}),
        }}

    def relevance(self, model, positive, negative, threshold, margin, while_sampling=DEFAULTS["while_sampling"],
                  feather=DEFAULTS["feather"], noise_level=DEFAULTS["noise_level"], draws=DEFAULTS["draws"], seed=0):
        image = image_latent(positive, "positive")
        image_latent(negative, "negative")
        batch = edit_batch_size(image.shape[0], positive[0][0].shape[0], negative[0][0].shape[0])
        percent = noise_level_percent(noise_level)
        probe = make_guider(model, positive, negative, 1.0, 1.0, kind=RelevanceProbe)
        probe.differences = []
        start = image.repeat(batch // image.shape[0], 1, 1, 1)
        sigma = float(model.get_model_object("model_sampling").percent_to_sigma(percent))
        for noise in noise_draws(tuple(start.shape), seed, draws):
            probe.sample(noise, start, comfy.samplers.sampler_object("euler"), torch.tensor([sigma, 0.0]), seed=seed,
                         disable_pbar=host.progress_bar_disabled())
        framing = option(positive, FRAMING_KEY)
        size = tuple(framing["padded"]) if framing else tuple(LATENT_STRIDE * side for side in start.shape[-2:])
        relevance = to_pixels(relevance_map(probe.differences), size)
        mask = relevance_mask(relevance, threshold, margin, feather)
        drawn = option(positive, MASK_KEY)
        if drawn is not None:  # a mask drawn in IP2P Encode bounds the relevant region
            mask = mask * drawn.to(mask)
        _warn_if_empty(mask, threshold)
        # SamplerCustomAdvanced edits inside the latent's noise_mask, starting from the image's latent.
        latent = {"samples": start.clone(), "noise_mask": mask} if while_sampling else \
            {"samples": torch.zeros_like(start)}
        if framing:
            latent[FRAMING_KEY] = framing
        shown = (unframe(mask, Framing.from_dict(framing)), unframe(relevance, Framing.from_dict(framing))) \
            if framing else (mask, relevance)
        values = {MASK_KEY: mask, DECODE_ONLY_KEY: not while_sampling}
        return with_values(positive, **values), with_values(negative, **values), latent, *shown


def _warn_if_empty(mask: torch.Tensor, threshold: float) -> None:
    """An empty mask edits nothing (the input comes back): said, since the user may expect an edit."""
    empty = [i for i in range(mask.shape[0]) if not bool((mask[i] > 0).any())]
    if empty:
        log.warning("IP2P Relevance Mask: no place is relevant enough at threshold %.2f for edit(s) %s: they will "
                    "return the input unchanged. Lower the threshold, or check the instruction (an empty one "
                    "changes nothing).", threshold, ", ".join(map(str, empty)))
