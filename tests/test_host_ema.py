"""IP2P Checkpoint Loader's `unet_weights`: the EMA copy a checkpoint of the authors' training layout carries.

The generated checkpoint is the test model as the authors' code saves it: a pickled .ckpt
with `state_dict`, the UNet under `model.diffusion_model.*` and a different UNet (its
"average") under `model_ema.*` with LitEma's dotless names. `auto` must edit as diffusers'
pipeline does with the EMA UNet; `non-ema` as ComfyUI's own Load Checkpoint does with the file.
"""
import shutil

import pytest
import torch
from conftest import IP2P_CKPT, SMALL_IMAGE, one_big_temporary
from reference import pipeline_latent, relative_diff
from safetensors.torch import load_file, save_file
from test_host_parity import DIFFUSERS_RTOL

from harness.host_graphs import failure, pack_edit, saved_latent
from ip2p_core.formats.ema_weights import ema_name
from training.sparse_files import dig_holes, dig_holes_in
from training.trainable_model import comfy_tokenizer_dir, ip2p_pipeline, load_model

pytestmark = pytest.mark.host
EMA_CKPT = "authors_layout_ema.ckpt"
UNET = "model.diffusion_model."
INSTRUCTION = "turn the sky into a sunset"


@pytest.fixture(scope="module")
def ema_model(host, demo, tmp_path_factory):
    """(the EMA UNet as a diffusers folder, the host's name of the two-UNet .ckpt)."""
    with one_big_temporary():
        yield from _ema_model(host, demo, tmp_path_factory.mktemp("ema"))


def _ema_model(host, demo, folder):
    state = load_file(str(demo.model.checkpoint))
    generator = torch.Generator().manual_seed(7)
    average = {k: v + 0.05 * v.float().std() * torch.randn(v.shape, generator=generator)
               for k, v in state.items() if k.startswith(UNET)}
    # Each copy's zero text-encoder layers become holes before the next copy is written (the three
    # would be 1.4 GB of disk at once, the largest temporary files of a run after the recipe's).
    ema_as_unet = folder / "ema_as_unet.safetensors"
    save_file({**state, **average}, str(ema_as_unet))
    dig_holes(ema_as_unet)
    ip2p_pipeline(load_model(ema_as_unet, comfy_tokenizer_dir())).save_pretrained(folder / "ema_diffusers")
    ema_as_unet.unlink()
    dig_holes_in(folder / "ema_diffusers")
    ckpt = folder / EMA_CKPT
    torch.save({"global_step": 22000, "state_dict": {
        **state, **{ema_name(k): v for k, v in average.items()},
        "model_ema.decay": torch.tensor(0.9999), "model_ema.num_updates": torch.tensor(22000)}}, ckpt)
    dig_holes(ckpt)
    name = host.add_model("checkpoints", ckpt, EMA_CKPT)
    host.object_info(refresh=True)
    try:
        yield folder / "ema_diffusers", name
    finally:
        host.remove_model("checkpoints", name)
        shutil.rmtree(folder)  # two copies of the model: nothing to keep


def edit(ckpt, unet_weights=None, loader="IP2PCheckpointLoader"):
    graph = pack_edit(ckpt, SMALL_IMAGE, INSTRUCTION, seed=3, steps=4, text_cfg=7.5, image_cfg=1.5, loader=loader)
    if unet_weights:
        graph["1"]["inputs"]["unet_weights"] = unet_weights
    return graph


def test_auto_samples_with_the_ema_weights_as_diffusers_does(host, ema_model, test_images):
    diffusers_dir, name = ema_model
    reference = pipeline_latent(diffusers_dir, test_images[SMALL_IMAGE], INSTRUCTION, seed=3, steps=4, text_cfg=7.5,
                                image_cfg=1.5)
    auto = saved_latent(host, edit(name, "auto"))
    assert relative_diff(auto, reference) < DIFFUSERS_RTOL
    assert torch.equal(auto, saved_latent(host, edit(name, "ema")))
    assert "sampling with its EMA weights (model_ema.*)" in host.log_path.read_text()


def test_non_ema_is_what_comfyuis_load_checkpoint_loads(host, ema_model):
    _, name = ema_model
    non_ema = saved_latent(host, edit(name, "non-ema"))
    assert torch.equal(non_ema, saved_latent(host, edit(name, loader="CheckpointLoaderSimple")))
    assert relative_diff(non_ema, saved_latent(host, edit(name, "auto"))) > 1e-3


def test_ema_on_a_file_without_an_ema_copy_is_refused(host):
    assert (f"unet_weights 'ema': {IP2P_CKPT} has no complete EMA weights: it holds no EMA copy of the UNet "
            "(model_ema.*)") in failure(host, edit(IP2P_CKPT, "ema"))
