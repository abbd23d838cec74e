"""Small models and data for the training tests: a miniature SD (harness.small_sd) and shape pairs.

Imported as fixtures by the training tests; everything is made in seconds in a temporary folder.
"""
import pytest
import torch

from training.paired_data import image_to_tensor
from harness.small_sd import make_small_sd
from training.synthetic_shapes import make_pairs, write_pair_folder
from training.trainable_model import comfy_tokenizer_dir


@pytest.fixture(scope="session")
def shape_pairs(tmp_path_factory):
    return write_pair_folder(tmp_path_factory.mktemp("shape_pairs"), make_pairs(8, seed=0, size=16))


@pytest.fixture(scope="session")
def small_sd(tmp_path_factory):
    """A miniature SD1.x diffusers folder (4-channel UNet), its VAE fitted for two steps only."""
    images = torch.stack([image_to_tensor(p.original) for p in make_pairs(8, seed=0, size=16)])
    return make_small_sd(tmp_path_factory.mktemp("small_sd") / "model", images, comfy_tokenizer_dir(), vae_steps=2)
