"""UltraEdit (SD3 transformers trained the InstructPix2Pix way) built by ComfyUI's own MMDiT code.

ComfyUI's SD3 config matches 16-channel transformers only, so a 32- or 48-channel UltraEdit file
is "not a known model" to it. The pack does not add a config to ComfyUI's list (that would change
every other node's loading): its loaders build UltraEdit models through this config, a subclass of
ComfyUI's SD3 one, into a ModelPatcher exactly as ComfyUI's diffusion-model loader does, so they
live under the host's model management (offloading, dtypes, patches).

What differs from ComfyUI's SD3, after the authors' pipeline and training script
(HaozheZhao/UltraEdit):
- the transformer's input is [noisy latent | image latent | mask latent (48-channel mask model)],
  the image and mask latents being the VAE's unscaled mode (`process_ip2p_image_in` is the identity);
- the model space is the latent times 1.5305 with no shift (`UltraEditLatentFormat`);
- an entry without the image (the unconditional prediction) gets zero image *and* mask latents.
"""
import comfy.conds
import comfy.latent_formats
import comfy.model_base
import comfy.model_detection
import comfy.model_management
import comfy.model_patcher
import comfy.supported_models
import comfy.utils
import torch

from ..ip2p_core.errors import IP2PUserError
from ..ip2p_core.formats.latents import Family
from .conditioning import IMAGE_KEY, MASK_LATENT_KEY

FREE_FORM_CHANNELS = 32  # noisy + image; the mask model has 16 more


class UltraEditLatentFormat(comfy.latent_formats.SD3):
    """SD3's latent format without its shift: UltraEdit was trained on latent * 1.5305."""

    def __init__(self):
        super().__init__()
        self.scale_factor = Family.ULTRAEDIT.value.scaling_factor
        self.shift_factor = 0.0


class UltraEditSD3(comfy.model_base.SD3):
    """ComfyUI's SD3 model that also takes the image (and mask) latents after the noisy one."""

    def __init__(self, model_config, model_type=comfy.model_base.ModelType.FLOW, device=None):
        super().__init__(model_config, model_type, device=device)
        self.takes_mask = model_config.unet_config["in_channels"] > FREE_FORM_CHANNELS

    def process_ip2p_image_in(self, image):
        return image  # the authors concatenate the VAE's unscaled mode

    def extra_conds(self, **kwargs):
        out = super().extra_conds(**kwargs)
        noise = kwargs["noise"]
        image = kwargs.get(IMAGE_KEY)
        mask = kwargs.get(MASK_LATENT_KEY)
        if image is None:  # the unconditional prediction: no image, no mask
            parts = [torch.zeros_like(noise)] * (2 if self.takes_mask else 1)
        elif self.takes_mask and mask is None:
            raise IP2PUserError(
                "this UltraEdit model takes a mask (48 input channels) but the conditioning has no mask latent: "
                "encode the image with an IP2P Encode node (ComfyUI's InstructPixToPixConditioning does not make one)")
        else:
            parts = [self.process_ip2p_image_in(image)] + ([mask] if self.takes_mask else [])
        parts = [_fit(part.to(kwargs["device"]), noise) for part in parts]
        out["c_concat"] = comfy.conds.CONDNoiseShape(torch.cat(parts, dim=1))
        return out


def _fit(latent, noise):
    """A latent at the noise's size and batch, as ComfyUI's IP2P models fit theirs."""
    if latent.shape[-2:] != noise.shape[-2:]:
        latent = comfy.utils.common_upscale(latent, noise.shape[-1], noise.shape[-2], "bilinear", "center")
    return comfy.utils.resize_to_batch_size(latent, noise.shape[0])


class UltraEditConfig(comfy.supported_models.SD3):
    """ComfyUI's SD3 config (flow matching, shift 3, its text encoders and VAE keys) for UltraEdit."""

    unet_config = {"in_channels": FREE_FORM_CHANNELS}
    latent_format = UltraEditLatentFormat

    def get_model(self, state_dict, prefix="", device=None):
        return UltraEditSD3(self, device=device)


def ultraedit_config(state_dict: dict, prefix: str = "") -> UltraEditConfig:
    """The config of the MMDiT whose weights (in ComfyUI's layout) start with `prefix`."""
    return UltraEditConfig(comfy.model_detection.detect_unet_config(state_dict, prefix))


def load_ultraedit(state_dict: dict, dtype, name: str):
    """A ModelPatcher of the UltraEdit MMDiT in `state_dict` (ComfyUI's layout, no prefix), loaded
    as ComfyUI's diffusion-model loader loads a model it detected; `dtype` None: the host's choice."""
    config = ultraedit_config(state_dict)
    load_device = comfy.model_management.get_torch_device()
    offload_device = comfy.model_management.unet_offload_device()
    if dtype is None:
        dtype = comfy.model_management.unet_dtype(model_params=comfy.utils.calculate_parameters(state_dict),
                                                  supported_dtypes=config.supported_inference_dtypes)
    config.set_inference_dtype(dtype, comfy.model_management.unet_manual_cast(dtype, load_device,
                                                                                config.supported_inference_dtypes))
    model = config.get_model(state_dict).to(offload_device)
    expected = set(model.diffusion_model.state_dict())
    missing, unexpected = sorted(expected - set(state_dict)), sorted(set(state_dict) - expected)
    if missing or unexpected:
        raise IP2PUserError(f"{name}: the SD3 transformer's weights do not fit the model its shapes describe "
                            f"(missing {missing[:3]}, unexpected {unexpected[:3]}): the file is damaged or of "
                            "another architecture")
    model.load_model_weights(state_dict, "")
    return comfy.model_patcher.ModelPatcher(model, load_device=load_device, offload_device=offload_device)
