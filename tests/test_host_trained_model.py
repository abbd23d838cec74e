"""A model made by `python -m training.train` loads in ComfyUI's loader and the pack's, and edits.

Trained for one step from the demo model's SD twin (single file, 4 channels), so ComfyUI's
own detection sees a real SD1.5 InstructPix2Pix layout; the single file and the diffusers
folder the run writes must give the same edit through every loader.
"""
import shutil

import pytest
import torch
from conftest import SMALL_IMAGE
from train_fixtures import shape_pairs  # noqa: F401 (fixture)

from harness.host_graphs import pack_edit, saved_latent
from training.train import TrainOptions, train
from training.train_checkpoints import CHECKPOINTS
from training.trainable_model import comfy_tokenizer_dir

pytestmark = pytest.mark.host


@pytest.fixture(scope="module")
def trained(host, demo, shape_pairs, tmp_path_factory):
    output = tmp_path_factory.mktemp("trained") / "shapes_ip2p"
    result = train(TrainOptions(model=demo.sd_checkpoint, tokenizer=comfy_tokenizer_dir(), data=shape_pairs,
                                output=output, resolution=16, batch_size=1, steps=1, learning_rate=1e-4,
                                progress=False))
    shutil.rmtree(output / CHECKPOINTS)  # the resume state: not what this tests
    names = {"checkpoint": host.add_model("checkpoints", result.single_file, "trained_ip2p.safetensors"),
             "diffusers": host.add_model("diffusers", result.diffusers_dir, "trained_ip2p")}
    host.object_info(refresh=True)
    yield names
    host.remove_model("checkpoints", names["checkpoint"])
    host.remove_model("diffusers", names["diffusers"])
    shutil.rmtree(output)  # the trained model


def edit(host, ckpt, loader):
    graph = pack_edit(ckpt, SMALL_IMAGE, "make the circle red", seed=3, steps=2, text_cfg=7.5, image_cfg=1.5,
                      loader=loader)
    return saved_latent(host, graph)


def test_trained_model_edits_the_same_through_every_loader(host, trained):
    comfy = edit(host, trained["checkpoint"], "CheckpointLoaderSimple")
    pack = edit(host, trained["checkpoint"], "IP2PCheckpointLoader")
    graph = pack_edit("unused", SMALL_IMAGE, "make the circle red", seed=3, steps=2, text_cfg=7.5, image_cfg=1.5)
    graph["1"] = {"class_type": "IP2PDiffusersLoader", "inputs": {"model_path": trained["diffusers"]}}
    folder = saved_latent(host, graph)
    assert torch.isfinite(comfy).all() and comfy.shape == (1, 4, 6, 8)
    assert float((pack - comfy).abs().max()) <= 1e-6 * float(comfy.abs().max())
    assert float((folder - comfy).abs().max()) <= 1e-6 * float(comfy.abs().max())
