"""ComfyUI adapters of the pack, one module per concern; the logic lives in ip2p_core."""
from .color import IP2PColorMatch
from .decode import IP2PDecode
from .encode import IP2PEncode, IP2PEncodeText
from .fewer_passes import IP2PFewerPasses, IP2PFewerPassesCustom
from .guider import IP2PGuider
from .invert import IP2PInvert
from .loader import IP2PCheckpointLoader, IP2PDiffusersLoader, IP2PUNetLoader
from .make_model import IP2PAddDifference, IP2PFromSDModel
from .relevance import IP2PRelevanceMask
from .sampler import IP2PSampler
from .save import IP2PSaveCheckpoint
from .schedule import IP2PGuidanceSchedule
from .step_cache import IP2PStepCache

# Node ids are saved in users' workflows: never rename one, add a new id instead.
NODE_CLASS_MAPPINGS = {
    "IP2PCheckpointLoader": IP2PCheckpointLoader,
    "IP2PEncode": IP2PEncode,
    "IP2PEncodeText": IP2PEncodeText,
    "IP2PSampler": IP2PSampler,
    "IP2PGuider": IP2PGuider,
    "IP2PDecode": IP2PDecode,
    "IP2PColorMatch": IP2PColorMatch,
    "IP2PGuidanceSchedule": IP2PGuidanceSchedule,
    "IP2PUNetLoader": IP2PUNetLoader,
    "IP2PDiffusersLoader": IP2PDiffusersLoader,
    "IP2PFromSDModel": IP2PFromSDModel,
    "IP2PAddDifference": IP2PAddDifference,
    "IP2PSaveCheckpoint": IP2PSaveCheckpoint,
    "IP2PFewerPasses": IP2PFewerPasses,
    "IP2PFewerPassesCustom": IP2PFewerPassesCustom,
    "IP2PStepCache": IP2PStepCache,
    "IP2PInvert": IP2PInvert,
    "IP2PRelevanceMask": IP2PRelevanceMask,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "IP2PCheckpointLoader": "IP2P Checkpoint Loader",
    "IP2PEncode": "IP2P Encode",
    "IP2PEncodeText": "IP2P Encode (Instruction)",
    "IP2PSampler": "IP2P Sampler",
    "IP2PGuider": "IP2P Guider",
    "IP2PDecode": "IP2P Decode",
    "IP2PColorMatch": "IP2P Color Match",
    "IP2PGuidanceSchedule": "IP2P Guidance Schedule",
    "IP2PUNetLoader": "IP2P UNet Loader",
    "IP2PDiffusersLoader": "IP2P Diffusers Loader",
    "IP2PFromSDModel": "IP2P from SD Model (widen conv_in)",
    "IP2PAddDifference": "IP2P Add Difference (merge a fine-tune)",
    "IP2PSaveCheckpoint": "IP2P Save Checkpoint",
    "IP2PFewerPasses": "IP2P Fewer Passes",
    "IP2PFewerPassesCustom": "IP2P Fewer Passes (custom)",
    "IP2PStepCache": "IP2P Step Cache",
    "IP2PInvert": "IP2P Invert",
    "IP2PRelevanceMask": "IP2P Relevance Mask",
}
