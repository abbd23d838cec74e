"""IP2P Fewer Passes (a preset, or custom): which guidance passes the IP2P Sampler or Guider may
skip, and step caching."""
from ..ip2p_core.inference.fewer_passes import PRESETS, PassSaving
from .step_cache import CACHE_DEPTH, CACHE_INTERVAL


def _range_end(default: float, which: str, term: str) -> tuple:
    return ("FLOAT", {"default": default, "min": 0.0, "max": 1.0, "step": 0.01,
                      "tooltip": f"Where the {term} guidance term {which}, as a fraction of the schedule "
                                 "(0 = the first step, 1 = the end), like ConditioningSetTimestepRange. Outside "
                                 f"its range the term is off and its prediction is not computed."})


class _FewerPassesNode:
    """What both fewer-passes nodes output, and where it goes."""
    CATEGORY = "InstructPix2Pix/sampling"
    RETURN_TYPES = ("IP2P_FEWER_PASSES",)
    RETURN_NAMES = ("fewer_passes",)
    OUTPUT_TOOLTIPS = ("Connect to fewer_passes on the IP2P Sampler or IP2P Guider.",)
    FUNCTION = "make"


class IP2PFewerPassesCustom(_FewerPassesNode):
    DESCRIPTION = ("Spends fewer UNet passes per edit: each guidance term only in its own part of the schedule "
                   "(guidance interval), terms that switch off once their predictions agree (adaptive guidance), "
                   "and optional step caching. Text term off = plain CFG on instruction + image at the image scale; "
                   "image term off = image scale 1. Connect to the IP2P Sampler's or Guider's fewer_passes.")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "text_start": _range_end(0.0, "starts", "text"),
            "text_end": _range_end(1.0, "ends", "text"),
            "image_start": _range_end(0.0, "starts", "image"),
            "image_end": _range_end(1.0, "ends", "image"),
            "stop_when_agree": ("FLOAT", {"default": 1.0, "min": 0.9, "max": 1.0, "step": 0.0001, "round": 0.00001,
                                          "tooltip": "A term switches off for the rest of the run once the cosine "
                                                     "similarity of its two noise predictions exceeds this "
                                                     "(e.g. 0.999). 1 = never."}),
            "cache_interval": CACHE_INTERVAL,
            "cache_depth": CACHE_DEPTH,
        }}

    def make(self, text_start, text_end, image_start, image_end, stop_when_agree, cache_interval, cache_depth):
        return (PassSaving((text_start, text_end), (image_start, image_end), stop_when_agree, cache_interval,
                           cache_depth),)


PRESET_TOOLTIP = ("faithful: all three predictions at every step, the edit without this node. "
                  "balanced: each guidance term stops once its two predictions agree (cosine similarity above "
                  "0.99); the remaining steps compute the instruction + image prediction alone. "
                  "fast: the same at 0.995, plus step caching every 2nd step (the UNet's deep blocks reused). "
                  "Chosen on the demo model's validation pairs; time and error of each against faithful on its "
                  "test pairs: benchmarks/RESULTS.md, 'Fewer UNet passes on the demo model'.")


class IP2PFewerPasses(_FewerPassesNode):
    DESCRIPTION = ("Fewer UNet passes per edit, as a named preset: faithful = every pass (the edit without this "
                   "node), balanced and fast = less time for a small change to the edit (measured on the demo "
                   "model in benchmarks/RESULTS.md). Connect to the IP2P Sampler's or Guider's fewer_passes; "
                   "IP2P Fewer Passes (custom) sets each technique by hand.")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "preset": (list(PRESETS), {"default": "balanced", "tooltip": PRESET_TOOLTIP}),
        }}

    def make(self, preset):
        return (PRESETS[preset],)
