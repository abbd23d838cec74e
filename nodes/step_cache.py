"""IP2P Step Cache: a model patch that reuses the UNet's deep features between neighbouring steps.

The deep blocks are swapped by object patches on a clone (ip2p_core/inference/step_cache.py
says how a swapped block behaves); a `model_function_wrapper` tells the cache, per UNet call,
which step and which batch of predictions it is, and runs any wrapper already installed.
"""
import comfy.ldm.modules.attention

from ..ip2p_core.inference.step_cache import StepCache, cached_block, deep_blocks

CACHE_INTERVAL = ("INT", {"default": 2, "min": 1, "max": 10,
                          "tooltip": "Run the whole UNet every this many steps and only its shallow blocks in "
                                     "between: higher is faster and further from the uncached edit (measured "
                                     "in benchmarks/RESULTS.md, 'Fewer UNet passes on the demo model'). 1 = off."})
CACHE_DEPTH = ("INT", {"default": 1, "min": 1, "max": 11,
                       "tooltip": "How many input and output blocks at full resolution run at every step. "
                                  "More = closer to the uncached edit, slower. The first input block is the "
                                  "one that reads the image latent."})


def with_step_cache(model, interval: int, depth: int = 1):
    """`model` itself at interval 1, else a clone whose UNet caches its deep features."""
    if interval == 1:
        return model
    cache = StepCache(interval)
    blocks = deep_blocks(model.get_model_object("diffusion_model"), depth)
    patched = model.clone()
    for deep in blocks:
        patched.add_object_patch(f"diffusion_model.{deep.path}", cached_block(deep, cache, _is_transformer))
    patched.set_model_unet_function_wrapper(_tell_cache(cache, model.model_options.get("model_function_wrapper")))
    return patched


def _is_transformer(layer) -> bool:
    return isinstance(layer, comfy.ldm.modules.attention.SpatialTransformer)


def _tell_cache(cache: StepCache, inner):
    def wrapper(apply_model, args):
        key = (tuple(args["cond_or_uncond"]), tuple(args["input"].shape))
        cache.begin_call(key, float(args["timestep"].max()), args["c"].get("transformer_options"))
        completed = False
        try:
            out = inner(apply_model, args) if inner is not None else apply_model(
                args["input"], args["timestep"], **args["c"])
            completed = True
            return out
        finally:
            cache.end_call(completed)
    return wrapper


class IP2PStepCache:
    DESCRIPTION = ("Speeds up sampling by reusing the UNet's deep features between neighbouring steps "
                   "(DeepCache) and recomputing only the shallow blocks, which see the image latent. "
                   "Works with the IP2P Sampler and Guider and with the host's samplers.")
    CATEGORY = "InstructPix2Pix/sampling"
    RETURN_TYPES = ("MODEL",)
    RETURN_NAMES = ("model",)
    OUTPUT_TOOLTIPS = ("The model with step caching: connect it where the model was.",)
    FUNCTION = "patch"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": ("MODEL", {"tooltip": "A UNet model (SD1.5 or SDXL family), e.g. from IP2P Checkpoint Loader."}),
            "cache_interval": CACHE_INTERVAL,
            "cache_depth": CACHE_DEPTH,
        }}

    def patch(self, model, cache_interval, cache_depth):
        return (with_step_cache(model, cache_interval, cache_depth),)
