"""ip2p_core.formats.merge: which models fit an add-difference merge (the arithmetic is the host's, tested in
tests/test_host_models.py against a hand-computed merge)."""
import pytest

from ip2p_core.errors import IP2PUserError
from ip2p_core.formats.merge import check_mergeable

CONV = "input_blocks.0.0.weight"


def shapes(in_channels, **extra):
    return {CONV: (4, in_channels, 3, 3), "out.2.bias": (4,), **extra}


def test_sd_fine_tune_onto_ip2p_widens_conv_in():
    assert check_mergeable(shapes(8), shapes(4), shapes(4)) == CONV


def test_models_of_one_shape_need_no_widening():
    assert check_mergeable(shapes(8), shapes(8), shapes(8)) is None


def test_mismatched_base_models_are_named():
    with pytest.raises(IP2PUserError, match="the custom and base models differ in their weights"):
        check_mergeable(shapes(8), shapes(4), shapes(4, **{"extra.weight": (1,)}))
    wrong = shapes(4)
    wrong["out.2.bias"] = (8,)
    with pytest.raises(IP2PUserError, match=r"out.2.bias is \(4,\) in the custom model but \(8,\) in the base"):
        check_mergeable(shapes(8), shapes(4), wrong)


def test_custom_model_of_another_architecture_is_refused():
    with pytest.raises(IP2PUserError, match="weights the IP2P model lacks"):
        check_mergeable(shapes(8), {"sdxl.only": (1,)}, {"sdxl.only": (1,)})
    with pytest.raises(IP2PUserError, match=r"out.2.bias is \(8,\) in the custom model but \(4,\) in the IP2P"):
        check_mergeable(shapes(8), shapes(4, **{"out.2.bias": (8,)}), shapes(4, **{"out.2.bias": (8,)}))


def test_a_wider_conv_in_than_the_ip2p_models_is_refused():
    with pytest.raises(IP2PUserError, match=r"input_blocks.0.0.weight is \(4, 9, 3, 3\) in the custom model"):
        check_mergeable(shapes(8), shapes(9), shapes(9))
