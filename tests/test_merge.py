import pytest
import torch

from ip2p_core.errors import IP2PUserError
from ip2p_core.merge import add_difference

CONV = "input_blocks.0.0.weight"


def small(seed, in_channels):
    g = torch.Generator().manual_seed(seed)
    return {CONV: torch.randn(4, in_channels, 3, 3, generator=g), "out.2.bias": torch.randn(4, generator=g)}


def test_merge_matches_a_hand_computed_add_difference():
    ip2p, custom, base = small(0, 8), small(1, 4), small(2, 4)
    merged = add_difference(ip2p, custom, base, 0.5)
    torch.testing.assert_close(merged["out.2.bias"], ip2p["out.2.bias"] + 0.5 * (custom["out.2.bias"] - base["out.2.bias"]))
    torch.testing.assert_close(merged[CONV][:, :4], ip2p[CONV][:, :4] + 0.5 * (custom[CONV] - base[CONV]))
    assert torch.equal(merged[CONV][:, 4:], ip2p[CONV][:, 4:]), "the image channels keep the IP2P weights"


def test_strength_zero_is_the_ip2p_model_and_inputs_are_untouched():
    ip2p, custom, base = small(0, 8), small(1, 4), small(2, 4)
    before = {k: v.clone() for k, v in ip2p.items()}
    merged = add_difference(ip2p, custom, base, 0.0)
    assert all(torch.equal(merged[k], before[k]) for k in before)
    assert all(torch.equal(ip2p[k], before[k]) for k in before)


def test_keeps_the_ip2p_dtype():
    ip2p = {k: v.half() for k, v in small(0, 8).items()}
    assert add_difference(ip2p, small(1, 4), small(2, 4), 1.0)[CONV].dtype == torch.float16


def test_mismatched_base_models_are_named():
    base = small(2, 4)
    base["extra.weight"] = torch.zeros(1)
    with pytest.raises(IP2PUserError, match="the custom and base models differ in their weights"):
        add_difference(small(0, 8), small(1, 4), base, 1.0)
    wrong = small(2, 4)
    wrong["out.2.bias"] = torch.zeros(8)
    with pytest.raises(IP2PUserError, match=r"out.2.bias is \(4,\) in the custom model but \(8,\) in the base"):
        add_difference(small(0, 8), small(1, 4), wrong, 1.0)


def test_custom_model_of_another_architecture_is_refused():
    custom, base = {"sdxl.only": torch.zeros(1)}, {"sdxl.only": torch.zeros(1)}
    with pytest.raises(IP2PUserError, match="weights the IP2P model lacks"):
        add_difference(small(0, 8), custom, base, 1.0)
