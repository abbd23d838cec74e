"""Test-only nodes loaded into the test host beside the pack.

They stand in for what other packs feed the pack in real graphs, e.g. a folder loader that
found no files and returns an empty IMAGE batch, or the model patches IP-Adapter-like packs
install; one reports what the host's model management holds loaded.
"""
import time

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


# -- patches other packs install on a MODEL, written small -------------------------------

def _clone_with(model, key, fn):
    """A clone whose model_options list `key` has `fn` appended (the 2024 host has no setter
    for every hook kind, so the list is written directly, as the hosts' setters do)."""
    m = model.clone()
    m.model_options[key] = list(m.model_options.get(key, [])) + [fn]
    return m


def _seeded(shape, seed):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float32)


class IP2PTestImagePromptAttn2:
    """An IP-Adapter-shaped cross-attention patch: every attn2 gets a second attention over
    4 "image prompt" tokens, added with `weight`. The tokens and their key/value projections
    are seeded noise.

    routing "cond_or_uncond" picks the tokens per batch entry the way IP-Adapter does,
    `(cond_tokens, uncond_tokens)[i] for i in cond_or_uncond`, with all-zero uncond tokens
    (their attention output is exactly 0); "whole_batch" gives every entry the cond tokens."""
    CATEGORY = "testing"
    RETURN_TYPES = ("MODEL",)
    FUNCTION = "patch"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": ("MODEL",),
                             "weight": ("FLOAT", {"default": 1.0, "min": -10.0, "max": 10.0, "step": 0.01}),
                             "routing": (["cond_or_uncond", "whole_batch"],)}}

    def patch(self, model, weight, routing):
        from comfy.ldm.modules.attention import optimized_attention

        tokens = _seeded((1, 4, 768), 11)
        projections = {}

        def kv(inner, like):
            if inner not in projections:
                k = tokens @ _seeded((768, inner), 12 + inner) / 768 ** 0.5
                v = tokens @ _seeded((768, inner), 13 + inner) / 768 ** 0.5
                projections[inner] = (k, v)
            k, v = projections[inner]
            return k.to(like), v.to(like)

        def attn2(q, k, v, extra_options):
            heads = extra_options["n_heads"]
            out = optimized_attention(q, k, v, heads)
            k_cond, v_cond = kv(q.shape[-1], q)
            if routing == "whole_batch":
                ip_k, ip_v = k_cond.expand(q.shape[0], -1, -1), v_cond.expand(q.shape[0], -1, -1)
            else:
                cond_or_uncond = extra_options["cond_or_uncond"]
                per = q.shape[0] // len(cond_or_uncond)
                zeros = torch.zeros_like(k_cond)
                ip_k = torch.cat([(k_cond, zeros)[i].repeat(per, 1, 1) for i in cond_or_uncond])
                ip_v = torch.cat([(v_cond, zeros)[i].repeat(per, 1, 1) for i in cond_or_uncond])
            return out + weight * optimized_attention(q, ip_k, ip_v, heads)

        m = model.clone()
        unet = m.model.diffusion_model
        blocks = [("input", i, b) for i, b in enumerate(unet.input_blocks)]
        blocks += [("middle", 0, unet.middle_block)]
        blocks += [("output", i, b) for i, b in enumerate(unet.output_blocks)]
        for name, number, block in blocks:
            if any(hasattr(module, "transformer_blocks") for module in block.modules()):
                m.set_model_attn2_replace(attn2, name, number)
        return (m,)


class IP2PTestPreCFGNoGuidance:
    """A pre-CFG hook in the hosts' convention (conds_out = [cond, uncond, ...]): it sets the
    cond prediction to the uncond one, which turns the guidance scaled by cond_scale off."""
    CATEGORY = "testing"
    RETURN_TYPES = ("MODEL",)
    FUNCTION = "patch"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": ("MODEL",)}}

    def patch(self, model):
        def pre_cfg(args):
            out = list(args["conds_out"])
            return [out[1], out[1]] + out[2:]
        return (_clone_with(model, "sampler_pre_cfg_function", pre_cfg),)


class _PostCFGProbe:
    """A MODEL patch node adding the post-CFG hook that `hook(**inputs)` makes; the hook
    returns the guided prediction unchanged."""
    CATEGORY = "testing"
    RETURN_TYPES = ("MODEL",)
    FUNCTION = "patch"

    def patch(self, model, **inputs):
        return (_clone_with(model, "sampler_post_cfg_function", self.hook(**inputs)),)


class IP2PTestStepLog(_PostCFGProbe):
    """A post-CFG hook that appends a line to `path` per model evaluation and sleeps `delay`
    seconds: it makes sampling slow and countable, for interrupt tests."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": ("MODEL",), "path": ("STRING", {"default": ""}),
                             "delay": ("FLOAT", {"default": 0.2, "min": 0.0, "max": 10.0, "step": 0.01})}}

    @staticmethod
    def hook(path, delay):
        def post_cfg(args):
            with open(path, "a") as f:
                f.write(f"{float(args['sigma'].flatten()[0])}\n")
            time.sleep(delay)
            return args["denoised"]
        return post_cfg


class IP2PTestLoadedModels:
    """Reports what comfy.model_management holds loaded after `samples` were computed: per
    loaded model its class and whether it is one of this prompt's (the `model`, `clip`, `vae`
    inputs) or left over from an earlier prompt."""
    CATEGORY = "testing"
    RETURN_TYPES = ()
    OUTPUT_NODE = True
    FUNCTION = "report"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"samples": ("LATENT",), "model": ("MODEL",)},
                "optional": {"clip": ("CLIP",), "vae": ("VAE",)}}

    @classmethod
    def IS_CHANGED(cls, **kwargs):
        return float("nan")  # never cached: the host's state is what it reports

    def report(self, samples, model, clip=None, vae=None):
        import comfy.model_management as mm

        ours = {id(model.model)}
        if clip is not None:
            ours.add(id(clip.patcher.model))
        if vae is not None:
            ours.add(id(vae.first_stage_model))
        loaded = []
        for entry in mm.current_loaded_models:
            patcher = entry.model  # a weak reference's target upstream: None once collected
            if patcher is None:
                continue
            inner = patcher.model
            loaded.append({"class": type(inner).__name__, "ours": id(inner) in ours,
                           "dtype": str(getattr(patcher, "model_dtype", lambda: None)())})
        return {"ui": {"loaded": loaded}}


NODE_CLASS_MAPPINGS.update({
    "IP2PTestImagePromptAttn2": IP2PTestImagePromptAttn2,
    "IP2PTestPreCFGNoGuidance": IP2PTestPreCFGNoGuidance,
    "IP2PTestStepLog": IP2PTestStepLog,
    "IP2PTestLoadedModels": IP2PTestLoadedModels,
})


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
    then saves, per UNet call, the tensor conv_in (an SD3 transformer's patch embedding) actually
    gets (noisy latent in channels 0-3, image latent in 4-7; SD3: 0-15, 16-31, mask 32-47), the
    c_concat, text context and pooled vector the host built, sigma and cond_or_uncond, to
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
        conv_in = unet.input_blocks[0][0] if hasattr(unet, "input_blocks") else unet.x_embedder.proj

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
            recorded = {key: args["c"].get(key) for key in ("c_concat", "c_crossattn", "y")}
            calls.append({"unet_input": seen[0] if seen else None,
                          **{k: None if v is None else v.detach().cpu().clone() for k, v in recorded.items()},
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
