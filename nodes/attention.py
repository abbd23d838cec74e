"""PyTorch attention for the IP2P guider's UNet where the host fell back to sub-quadratic on the CPU.

On the CPU both hosts run attention through their sub-quadratic kernel unless started with
--use-pytorch-cross-attention; at 512 px that makes every step about 1.8x slower than
diffusers, which calls torch's scaled_dot_product_attention (benchmarks/RESULTS.md). The
guider's model is a clone that sends each attention through the host's own PyTorch kernel
instead, by attention-replace patches: the computation that flag selects, on this model only.

Patches are keyed (block name, number), the key form PAG and IP-Adapter-style packs use; a
replacement the user installed under that key is kept, and one keyed (block name, number,
transformer index), like SAG's, takes precedence by the hosts' lookup order.
"""
import functools
import logging

from . import host

ATTENTIONS = ("attn1", "attn2")


def with_pytorch_attention(model):
    """`model` itself, or a clone whose UNet attention runs PyTorch's kernel where that is safe."""
    transformer_options = model.model_options.get("transformer_options", {})
    # optimized_attention_override (upstream): a pack chose the kernel for every attention.
    if not host.runs_sub_quadratic_by_default(model) or "optimized_attention_override" in transformer_options:
        return model
    replaced = transformer_options.get("patches_replace", {})
    patched = model.clone()
    changed = False
    for name in ATTENTIONS:
        for block in attention_blocks(model.model.diffusion_model):
            if block not in replaced.get(name, {}):
                patched.set_model_patch_replace(_pytorch_attention, name, *block)
                changed = True
    if not changed:
        return model
    _log_choice()
    return patched


def attention_blocks(unet) -> list:
    """(block name, number) of the UNet blocks holding transformers, as the UNet names them."""
    blocks = [("input", i, b) for i, b in enumerate(getattr(unet, "input_blocks", []))]
    blocks += [("middle", 0, unet.middle_block)] if getattr(unet, "middle_block", None) is not None else []
    blocks += [("output", i, b) for i, b in enumerate(getattr(unet, "output_blocks", []))]
    return [(name, number) for name, number, block in blocks
            if any(hasattr(module, "transformer_blocks") for module in block.modules())]


def _pytorch_attention(q, k, v, extra_options):
    return host.pytorch_attention(q, k, v, extra_options["n_heads"])


@functools.lru_cache(maxsize=None)
def _log_choice():
    logging.info("IP2P: ComfyUI runs attention on the CPU with its sub-quadratic kernel; the IP2P sampler "
                 "uses PyTorch's scaled_dot_product_attention instead (as --use-pytorch-cross-attention "
                 "would, several times faster on the CPU). Start ComfyUI with --use-quad-cross-attention "
                 "to keep sub-quadratic attention.")
