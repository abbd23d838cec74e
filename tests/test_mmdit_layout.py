"""diffusers' SD3 transformer keys into ComfyUI's MMDiT layout (the pack's converter, for both hosts).

That the converted weights compute diffusers' outputs is the host parity tests' part
(tests/test_host_ultraedit.py); here: every tensor lands once, q/k/v are fused in order, and the
two modulations diffusers orders (scale, shift) are swapped to MMDiT's (shift, scale).
"""
import pytest
import torch

from harness.sd3_model_factory import MASK_CHANNELS, transformer_config, ultraedit_transformer
from ip2p_core.formats.mmdit_layout import diffusers_sd3_to_mmdit, is_diffusers_sd3


@pytest.fixture(scope="module")
def diffusers_state():
    return {k: v.float() for k, v in ultraedit_transformer(MASK_CHANNELS).state_dict().items()}


def test_every_weight_lands_once_with_the_same_values(diffusers_state):
    assert is_diffusers_sd3(diffusers_state)
    converted = diffusers_sd3_to_mmdit(diffusers_state)
    assert sum(v.numel() for v in converted.values()) == sum(v.numel() for v in diffusers_state.values())
    assert converted["x_embedder.proj.weight"].shape[1] == MASK_CHANNELS
    assert torch.equal(converted["pos_embed"], diffusers_state["pos_embed.pos_embed"])


def test_q_k_v_are_fused_in_order(diffusers_state):
    converted = diffusers_sd3_to_mmdit(diffusers_state)
    q, k, v = converted["joint_blocks.0.x_block.attn.qkv.weight"].chunk(3)
    assert torch.equal(q, diffusers_state["transformer_blocks.0.attn.to_q.weight"])
    assert torch.equal(v, diffusers_state["transformer_blocks.0.attn.to_v.weight"])
    assert torch.equal(converted["joint_blocks.0.context_block.attn.qkv.bias"].chunk(3)[1],
                       diffusers_state["transformer_blocks.0.attn.add_k_proj.bias"])


def test_final_modulations_become_shift_then_scale(diffusers_state):
    converted = diffusers_sd3_to_mmdit(diffusers_state)
    last = transformer_config()["num_layers"] - 1
    for mmdit, diffusers in (("final_layer.adaLN_modulation.1.weight", "norm_out.linear.weight"),
                             (f"joint_blocks.{last}.context_block.adaLN_modulation.1.bias",
                              f"transformer_blocks.{last}.norm1_context.linear.bias")):
        scale, shift = diffusers_state[diffusers].chunk(2)
        assert torch.equal(converted[mmdit], torch.cat([shift, scale]))
    # Blocks before the last keep diffusers' order (AdaLayerNormZero's is MMDiT's).
    assert torch.equal(converted["joint_blocks.0.context_block.adaLN_modulation.1.weight"],
                       diffusers_state["transformer_blocks.0.norm1_context.linear.weight"])


def test_unknown_keys_are_named(diffusers_state):
    with pytest.raises(KeyError, match="mystery.weight"):
        diffusers_sd3_to_mmdit({**diffusers_state, "mystery.weight": torch.zeros(1)})
