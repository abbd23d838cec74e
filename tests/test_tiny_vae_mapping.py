"""A TAESD-format VAE between diffusers' AutoencoderTiny (training) and ComfyUI's checkpoint keys.

ComfyUI encodes `taesd_encoder(x) / vae_scale` and decodes `taesd_decoder(latent * vae_scale)`;
the pack's AutoencoderTiny encodes into that unscaled latent itself. The mapping must give the
same latents both ways round and keep the decoder's layer numbering (ComfyUI's starts with a clamp).
"""
import torch

from ip2p_core.formats.diffusers_to_ldm import tiny_vae_to_ldm
from training.ldm_to_diffusers import has_tiny_vae, load_tiny_vae_from_ldm, tiny_vae_config_from_ldm
from training.trainable_model import latent_from_moments, vae_decode, vae_latent_scale, vae_moments

SCALE = 0.18215


def tiny_vae(seed=0):
    from diffusers import AutoencoderTiny

    torch.manual_seed(seed)
    return AutoencoderTiny().eval()


def test_checkpoint_keys_are_comfyuis_taesd_keys():
    state = tiny_vae_to_ldm(tiny_vae().state_dict(), SCALE)
    assert has_tiny_vae(state)
    assert "first_stage_model.taesd_encoder.0.weight" in state and "first_stage_model.taesd_decoder.1.weight" in state
    assert "first_stage_model.taesd_decoder.0.weight" not in state  # layer 0 is ComfyUI's clamp
    assert torch.equal(state["first_stage_model.vae_scale"], torch.tensor(SCALE))
    assert float(state["first_stage_model.vae_shift"]) == 0


def test_round_trip_encodes_and_decodes_alike():
    from diffusers import AutoencoderTiny

    vae = tiny_vae()
    state = tiny_vae_to_ldm(vae.state_dict(), SCALE)
    back = AutoencoderTiny(**tiny_vae_config_from_ldm(state)).eval()
    load_tiny_vae_from_ldm(back, state, "test")
    assert back.config.scaling_factor == 1.0  # the decoder takes the SD1.5-scaled latent as it is
    pixels = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        latent = latent_from_moments(vae, vae_moments(vae, pixels))
        torch.testing.assert_close(latent_from_moments(back, vae_moments(back, pixels)), latent, rtol=1e-5, atol=1e-6)
        assert torch.equal(vae_decode(back, latent), vae_decode(vae, latent))
        # ComfyUI's decode of the unscaled latent: the decoder sees latent * vae_scale.
        assert torch.equal(vae_decode(vae, latent), vae.decoder(latent * SCALE))
    assert vae_latent_scale(vae) == SCALE
