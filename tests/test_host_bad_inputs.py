"""Bad input a shared server gets, through a real host: each is refused with a message that says
what is wrong, and the server answers a normal edit right after.

The messages here are the ones docs/troubleshooting.md lists. (Each input also has its own test
beside the feature it concerns; this one checks that none leaves the server worse off. An
interrupted edit followed by a normal one: tests/test_host_compose_memory.py.)
"""
import os

import pytest
import torch
from conftest import DAMAGED_CKPT, IP2P_CKPT, ODD_IMAGE, SD_CKPT, SMALL_IMAGE
from test_host_save import save_graph

from harness.host_graphs import failure, pack_edit, saved_latent

pytestmark = pytest.mark.host
EVIL_CKPT, EMPTY_CKPT = "runs_code.ckpt", "empty.safetensors"


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.makedirs, (str(self.marker),))


@pytest.fixture(scope="module")
def bad_files(host, tmp_path_factory):
    folder = tmp_path_factory.mktemp("bad_files")
    marker = folder / "the-payload-ran"
    torch.save({"state_dict": {"model.diffusion_model.input_blocks.0.0.weight": torch.zeros(320, 8, 3, 3),
                               "payload": _RunsCode(marker)}}, folder / EVIL_CKPT)
    (folder / EMPTY_CKPT).write_bytes(b"")
    names = [host.add_model("checkpoints", folder / name) for name in (EVIL_CKPT, EMPTY_CKPT)]
    host.object_info(refresh=True)
    yield marker
    for name in names:
        host.remove_model("checkpoints", name)


def edit(image=SMALL_IMAGE, seed=1, **kwargs):
    return pack_edit(IP2P_CKPT, image, "make it winter", seed=seed, steps=2, text_cfg=7.5, image_cfg=1.5, **kwargs)


def load(ckpt):
    graph = edit()
    graph["1"]["inputs"]["ckpt_name"] = ckpt
    return graph


MASK = {"30": {"class_type": "LoadImageMask", "inputs": {"image": "small_mask.png", "channel": "red"}}}
BAD_INPUTS = {
    "pickled .ckpt whose unpickling would run code": (
        lambda: load(EVIL_CKPT), f"{EVIL_CKPT} is a pickle holding Python objects besides model weights: unpickling "
                                 "them could run code stored in the file, so it was not loaded"),
    "truncated .safetensors": (lambda: load(DAMAGED_CKPT), f"cannot read checkpoint {DAMAGED_CKPT}: the file is "
                                                           "damaged or not a model file"),
    "empty .safetensors": (lambda: load(EMPTY_CKPT), f"cannot read checkpoint {EMPTY_CKPT}: the file is damaged"),
    "ordinary SD checkpoint": (lambda: load(SD_CKPT), f"{SD_CKPT} is not an InstructPix2Pix model: it is an ordinary "
                                                      "text-to-image model (4 input channels)"),
    "save prefix ../x": (lambda: save_graph("../x"), "filename_prefix '../x' leads out of output/checkpoints"),
    "save prefix sub/../../x": (lambda: save_graph("sub/../../x"),
                                "filename_prefix 'sub/../../x' leads out of output/checkpoints"),
    "absolute save prefix": (lambda: save_graph("/srv/models/x"),
                             "filename_prefix '/srv/models/x' is an absolute path"),
    "empty save prefix": (lambda: save_graph(""), "filename_prefix '' names no file"),
    "mask of another size": (lambda: edit(image=ODD_IMAGE, nodes=MASK, encode={"mask": ["30", 0]}),
                             "the mask is 64x48 but the image is 61x45"),
}


@pytest.mark.parametrize("bad", BAD_INPUTS)
def test_bad_input_is_refused_and_the_next_edit_runs(host, bad_files, bad):
    graph, message = BAD_INPUTS[bad]
    assert message in failure(host, graph())
    assert not bad_files.exists(), "the pickled payload ran"
    assert torch.isfinite(saved_latent(host, edit(seed=len(bad)))).all()

