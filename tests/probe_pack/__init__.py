"""Test-only nodes loaded into the test host beside the pack.

They stand in for what other packs feed the pack in real graphs, e.g. a folder loader that
found no files and returns an empty IMAGE batch.
"""
import torch


class IP2PTestEmptyImageBatch:
    CATEGORY = "testing"
    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "make"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {}}

    def make(self):
        return (torch.zeros(0, 64, 64, 3),)


NODE_CLASS_MAPPINGS = {"IP2PTestEmptyImageBatch": IP2PTestEmptyImageBatch}
