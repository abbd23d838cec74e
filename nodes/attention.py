"""PyTorch attention for the IP2P guider's UNet where the host fell back to sub-quadratic on the CPU.

On the CPU both hosts pick their sub-quadratic attention kernel at import time unless started
with an attention flag; diffusers calls torch's scaled_dot_product_attention. At full size the
sub-quadratic kernel makes each step slower than diffusers' (benchmarks/RESULTS.md, "One edit at
512 px", has the figure). The guider's model is a clone that sends each attention through the
host's own PyTorch kernel instead, by attention-replace patches: the computation that
--use-pytorch-cross-attention selects, on this model only.

Patches are keyed (block name, number), the key form PAG and IP-Adapter-style packs use; a
replacement the user installed under that key is kept, and one keyed (block name, number,
transformer index), like SAG's, takes precedence by the hosts' lookup order. A transformer without
UNet blocks (UltraEdit's MMDiT) takes no such patches: upstream's kernel override serves it there;
the 2024 host has none, and its MMDiT keeps the sub-quadratic kernel.
"""
import functools
import logging

import comfy.ldm.modules.attention
import torch
from comfy.cli_args import args

from . import host

ATTENTIONS = ("attn1", "attn2")


def with_pytorch_attention(model):
    """`model` itself, or a clone whose UNet attention runs PyTorch's kernel where that is safe."""
    if not runs_sub_quadratic_by_default(model) or host.attention_kernel_chosen(model):
        return model
    if not attention_blocks(model.model.diffusion_model):  # a transformer: one override for all its attention
        patched = model.clone()
        if not host.override_attention_kernel(patched, _pytorch_kernel):
            return model
        _log_choice()
        return patched
    replaced = model.model_options.get("transformer_options", {}).get("patches_replace", {})
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


def runs_sub_quadratic_by_default(model) -> bool:
    """Whether this model's UNet attention runs the host's sub-quadratic kernel on the CPU in
    float32 only because no kernel was chosen.

    On the CPU both hosts pick that kernel at import time unless started with an attention flag
    (--use-pytorch-cross-attention, --use-split-cross-attention, --use-quad-cross-attention, ...);
    a flag is the user's choice and stands, as does the host's choice on a GPU. Other compute
    dtypes keep the kernel that honours the model's attention precision.
    """
    attention = comfy.ldm.modules.attention
    weights = model.model
    return (torch.device(model.load_device).type == "cpu"
            and attention.optimized_attention is attention.attention_sub_quad
            and not args.use_quad_cross_attention
            and (weights.manual_cast_dtype or weights.get_dtype()) == torch.float32)


def attention_blocks(unet) -> list:
    """(block name, number) of the UNet blocks holding transformers, as the UNet names them."""
    blocks = [("input", i, b) for i, b in enumerate(getattr(unet, "input_blocks", []))]
    blocks += [("middle", 0, unet.middle_block)] if getattr(unet, "middle_block", None) is not None else []
    blocks += [("output", i, b) for i, b in enumerate(getattr(unet, "output_blocks", []))]
    return [(name, number) for name, number, block in blocks
            if any(hasattr(module, "transformer_blocks") for module in block.modules())]


def _pytorch_attention(q, k, v, extra_options):
    """The host's own scaled_dot_product_attention kernel: what --use-pytorch-cross-attention runs."""
    return comfy.ldm.modules.attention.attention_pytorch(q, k, v, extra_options["n_heads"])


def _pytorch_kernel(func, *args, **kwargs):
    """Upstream's kernel override: the host's PyTorch kernel in place of `func`, with the same arguments."""
    return comfy.ldm.modules.attention.attention_pytorch(*args, **kwargs)


@functools.lru_cache(maxsize=None)
def _log_choice():
    logging.info("IP2P: ComfyUI runs attention on the CPU with its sub-quadratic kernel; the IP2P sampler "
                 "uses PyTorch's scaled_dot_product_attention instead, as --use-pytorch-cross-attention would "
                 "(faster on the CPU). Start ComfyUI with --use-quad-cross-attention to keep sub-quadratic "
                 "attention.")
