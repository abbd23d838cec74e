"""IP2P Guidance Schedule: a text or image guidance scale that changes over the steps."""
from ..ip2p_core.inference.schedule import KINDS, CfgSchedule, parse_values


class IP2PGuidanceSchedule:
    DESCRIPTION = ("A guidance scale per step for the IP2P Sampler or Guider: constant, a linear ramp, or a list "
                   "of values. Connect to text_cfg_schedule or image_cfg_schedule.")
    CATEGORY = "InstructPix2Pix/sampling"
    RETURN_TYPES = ("IP2P_CFG_SCHEDULE",)
    RETURN_NAMES = ("schedule",)
    OUTPUT_TOOLTIPS = ("One scale per sampler step: connect to text_cfg_schedule or image_cfg_schedule.",)
    FUNCTION = "make"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "kind": (list(KINDS), {"default": "linear",
                                   "tooltip": "constant: 'start' at every step; linear: from 'start' at the first "
                                              "step to 'end' at the last; list: 'values', one per step."}),
            "start": ("FLOAT", {"default": 1.5, "min": 0.0, "max": 100.0, "step": 0.05,
                                "tooltip": "The scale at the first step (constant and linear)."}),
            "end": ("FLOAT", {"default": 1.5, "min": 0.0, "max": 100.0, "step": 0.05,
                              "tooltip": "The scale at the last step (linear)."}),
            "values": ("STRING", {"default": "", "multiline": True,
                                  "tooltip": "For 'list': one value per sampler step, separated by commas or lines, "
                                             "e.g. '1.2, 1.4, 1.6, 1.8'."}),
        }}

    def make(self, kind, start, end, values):
        return (CfgSchedule(kind, start, end, parse_values(values) if kind == "list" else ()),)
