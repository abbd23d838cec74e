"""Test-only nodes loaded into the test host beside the pack.

They stand in for what other packs feed the pack in real graphs, e.g. a folder loader that
found no files and returns an empty IMAGE batch.
"""
import torch


class IP2PTestEmptyImageBatch:
    CATEGORY = "testing"
    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "make"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {}}

    def make(self):
        return (torch.zeros(0, 64, 64, 3),)


NODE_CLASS_MAPPINGS = {"IP2PTestEmptyImageBatch": IP2PTestEmptyImageBatch}


# -- model families: what ComfyUI built and what its UNet receives -------------------------

class IP2PTestSDXLConditioning:
    """A deterministic SDXL-shaped CONDITIONING without CLIP-G: seeded noise as the [1, 77, 2048]
    context and the [1, 1280] pooled output, with the size entries SDXL's adm embeds."""
    CATEGORY = "testing"
    RETURN_TYPES = ("CONDITIONING",)
    FUNCTION = "encode"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"seed": ("INT", {"default": 0, "min": 0, "max": 2 ** 31 - 1}),
                             "width": ("INT", {"default": 64, "min": 8, "max": 8192}),
                             "height": ("INT", {"default": 64, "min": 8, "max": 8192})}}

    def encode(self, seed, width, height):
        gen = torch.Generator().manual_seed(seed)
        context = torch.randn((1, 77, 2048), generator=gen)
        pooled = torch.randn((1, 1280), generator=gen)
        return ([[context, {"pooled_output": pooled, "width": width, "height": height, "crop_w": 0, "crop_h": 0,
                            "target_width": width, "target_height": height}]],)


class IP2PTestRecordUNetInput:
    """Reports the MODEL the host built and records what its UNet receives.

    At execution it writes `path` + ".json": the model class, the supported-model config
    ComfyUI's detection picked, model type, latent format, sampling sigmas, dtype and the
    diffusion model's weight names and shapes. The returned clone's model function wrapper
    then saves, per UNet call, the tensor conv_in actually gets (noisy latent in channels 0-3,
    image latent in 4-7), the c_concat the host built, sigma and cond_or_uncond, to
    `path` + ".calls.pt" (a list, rewritten after every call)."""
    CATEGORY = "testing"
    RETURN_TYPES = ("MODEL",)
    FUNCTION = "patch"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": ("MODEL",), "path": ("STRING", {"default": ""})}}

    def patch(self, model, path):
        import json

        inner = model.model
        sampling = inner.model_sampling
        unet = inner.diffusion_model
        config = inner.model_config
        report = {
            "model_class": type(inner).__name__,
            "config_class": type(config).__name__,
            "model_type": inner.model_type.name,
            "model_sampling": [c.__name__ for c in type(sampling).__mro__],  # a class made of two
            "sigma_min": float(sampling.sigma_min),
            "sigma_max": float(sampling.sigma_max),
            "sigma_data": float(getattr(sampling, "sigma_data", 1.0)),
            "latent_format": type(inner.latent_format).__name__,
            "scale_factor": float(inner.latent_format.scale_factor),
            "dtype": str(inner.get_dtype()),
            "unet_config": {k: config.unet_config.get(k) for k in (
                "in_channels", "model_channels", "context_dim", "adm_in_channels", "use_linear_in_transformer",
                "transformer_depth", "transformer_depth_output", "transformer_depth_middle", "channel_mult",
                "num_res_blocks")},
            "weights": {k: list(v.shape) for k, v in unet.state_dict().items()},
        }
        with open(path + ".json", "w") as f:
            json.dump(report, f)

        calls = []
        previous = model.model_options.get("model_function_wrapper")
        conv_in = unet.input_blocks[0][0]

        def wrapper(apply_model, args):
            seen = []
            hook = conv_in.register_forward_pre_hook(
                lambda module, inputs: seen.append(inputs[0].detach().cpu().clone()))
            try:
                if previous is not None:
                    out = previous(apply_model, args)
                else:
                    out = apply_model(args["input"], args["timestep"], **args["c"])
            finally:
                hook.remove()
            concat = args["c"].get("c_concat")
            calls.append({"unet_input": seen[0] if seen else None,
                          "c_concat": None if concat is None else concat.detach().cpu().clone(),
                          "sigma": args["timestep"].detach().cpu().clone(),
                          "cond_or_uncond": list(args["cond_or_uncond"]),
                          "output_finite": bool(torch.isfinite(out).all())})
            torch.save(calls, path + ".calls.pt")
            return out

        m = model.clone()
        m.set_model_unet_function_wrapper(wrapper)
        return (m,)


NODE_CLASS_MAPPINGS.update({
    "IP2PTestSDXLConditioning": IP2PTestSDXLConditioning,
    "IP2PTestRecordUNetInput": IP2PTestRecordUNetInput,
})
