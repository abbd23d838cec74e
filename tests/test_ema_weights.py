import pytest

from ip2p_core.errors import IP2PUserError
from ip2p_core.formats.ema_weights import ema_name, ema_names

UNET = ["model.diffusion_model.input_blocks.0.0.weight", "model.diffusion_model.out.2.bias"]
EMA = ["model_ema.diffusion_modelinput_blocks00weight", "model_ema.diffusion_modelout2bias"]
OTHER = ["first_stage_model.decoder.conv_in.weight", "model_ema.decay", "model_ema.num_updates"]


def test_litema_names():
    assert [ema_name(k) for k in UNET] == EMA


def test_auto_takes_a_complete_ema_copy_and_otherwise_the_unet():
    assert ema_names(UNET + EMA + OTHER, "auto", "f") == dict(zip(UNET, EMA))
    assert ema_names(UNET + OTHER, "auto", "f") is None
    assert ema_names(UNET + EMA[:1] + OTHER, "auto", "f") is None


def test_non_ema_keeps_the_unet():
    assert ema_names(UNET + EMA, "non-ema", "f") is None


def test_ema_without_an_ema_copy_is_refused():
    with pytest.raises(IP2PUserError, match=r"unet_weights 'ema': f.ckpt has no complete EMA weights: it holds no "
                                            r"EMA copy of the UNet \(model_ema\.\*\)\. Choose 'auto'"):
        ema_names(UNET + OTHER, "ema", "f.ckpt")
    with pytest.raises(IP2PUserError, match=r"its EMA copy lacks 1 of the UNet's 2 weights \(e\.g\. model_ema\.diffusion_modelout2bias\)"):
        ema_names(UNET + EMA[:1] + OTHER, "ema", "f.ckpt")
