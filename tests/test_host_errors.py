"""Mistakes users make, run through the real host: each must say what is wrong and what to do."""
import pytest
from conftest import DAMAGED_CKPT, GONE_CKPT, IP2P_CKPT, SD_CKPT, SMALL_IMAGE

from harness.host_graphs import failure, pack_edit

pytestmark = pytest.mark.host


def load(ckpt):
    return {"1": {"class_type": "IP2PCheckpointLoader", "inputs": {"ckpt_name": ckpt}},
            "2": {"class_type": "IP2PEncode", "inputs": {"positive": ["3", 0], "negative": ["3", 0],
                                                        "vae": ["1", 2], "image": ["4", 0]}},
            "3": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": ""}},
            "4": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0}},
            "5": {"class_type": "PreviewImage", "inputs": {"images": ["4", 0]}},
            "6": {"class_type": "SaveLatent", "inputs": {"samples": ["2", 2], "filename_prefix": "e"}}}



def test_four_channel_checkpoint_is_refused_with_what_to_use(host):
    message = failure(host, load(SD_CKPT))
    assert f"{SD_CKPT} is not an InstructPix2Pix model: it is an ordinary text-to-image model (4 input channels)" in message
    assert "Load Checkpoint" in message


def test_missing_checkpoint_file_is_named(host):
    message = failure(host, load(GONE_CKPT))
    assert f"'{GONE_CKPT}' was not found in models/checkpoints" in message


def test_damaged_checkpoint_says_download_again(host):
    message = failure(host, load(DAMAGED_CKPT))
    assert f"cannot read checkpoint {DAMAGED_CKPT}: the file is damaged" in message
    assert "Download it again" in message


def test_empty_image_batch_is_refused(host):
    prompt = load(IP2P_CKPT)
    prompt["4"] = {"class_type": "IP2PTestEmptyImageBatch", "inputs": {}}
    del prompt["5"]
    message = failure(host, prompt)
    assert "IP2PEncode" in message and "at least one image, got shape (0, 64, 64, 3)" in message


def test_sampler_refuses_a_model_that_is_not_ip2p(host):
    prompt = pack_edit(IP2P_CKPT, SMALL_IMAGE, "x", seed=0, steps=1, text_cfg=7.5, image_cfg=1.5)
    prompt["8"] = {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": SD_CKPT}}
    prompt["6"]["inputs"]["model"] = ["8", 0]
    message = failure(host, prompt)
    assert "the model input is a BaseModel in ComfyUI, not an InstructPix2Pix model" in message
    assert "only from an IP2P model of the SD1.5 or SDXL family" in message and "IP2P loader node" in message


def test_sampler_refuses_conditioning_without_the_image(host):
    prompt = pack_edit(IP2P_CKPT, SMALL_IMAGE, "x", seed=0, steps=1, text_cfg=7.5, image_cfg=1.5)
    prompt["6"]["inputs"]["positive"] = ["3", 0]
    message = failure(host, prompt)
    assert "'positive' carries no input image: connect it from an IP2P Encode node" in message
