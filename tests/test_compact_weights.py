"""ip2p_core.formats.compact_weights: the stored form the demo model ships in expands to exactly one state dict."""
import pytest
import torch

from ip2p_core.errors import IP2PUserError
from ip2p_core.formats.compact_weights import (
    _mix32_,
    dequantize_rows,
    digest,
    expand,
    hashed_uniform,
    manifest_from_metadata,
)
from training.compact_packing import compact, hashed, manifest_metadata, ones, quantize_rows, zeros

MASK = 0xFFFFFFFF


def lowbias32(x: int) -> int:
    """The hash as published, in Python's unbounded integers."""
    x ^= x >> 16
    x = (x * 0x7FEB352D) & MASK
    x ^= x >> 15
    x = (x * 0x846CA68B) & MASK
    return x ^ (x >> 16)


def test_the_hash_is_lowbias32_without_overflow():
    values = [0, 1, 2, 12345, 2**31 - 1, 2**31, 2**32 - 1, 0xDEADBEEF]
    x = torch.tensor(values)
    assert _mix32_(x, torch.empty_like(x)).tolist() == [lowbias32(v) for v in values]


def test_hashed_values_are_pinned_and_have_the_asked_spread():
    # Any change here changes the shipped demo model's text encoder: its record would then refuse it.
    assert hashed_uniform((2, 3), 1, 1.0).tolist() == [
        [-0.25275556657181447, -1.133036158694788, 1.7098332371584462],
        [0.9883518371590494, 1.43661181331941, -0.5235257669909541]]
    many = hashed_uniform((1000, 100), 5, 0.5)
    assert abs(float(many.std()) - 0.5) < 0.01 and abs(float(many.mean())) < 0.01
    assert not torch.equal(hashed_uniform((10,), 1, 1.0), hashed_uniform((10,), 2, 1.0))


def test_int8_rows_expand_to_what_was_measured():
    weight = torch.randn(8, 4, 3, 3, generator=torch.Generator().manual_seed(0))
    q, scale = quantize_rows(weight)
    assert q.dtype == torch.int8 and scale.shape == (8,)
    restored = dequantize_rows(q, scale)
    assert (restored - weight).abs().max() <= scale.max() / 2 + 1e-7  # half a step at most
    assert torch.equal(restored, dequantize_rows(q.clone(), scale.clone()))


def test_compact_round_trip_through_the_file_format(tmp_path):
    from safetensors import safe_open
    from safetensors.torch import save_file

    state = {"big": torch.randn(64, 64), "small": torch.randn(3), "gone": torch.zeros(5, 5, dtype=torch.float16),
             "norm": torch.ones(4, dtype=torch.float16), "emb": hashed_uniform((6, 2), 3, 1.0).half()}
    generated = {"gone": zeros((5, 5), torch.float16), "norm": ones((4,), torch.float16),
                 "emb": hashed((6, 2), torch.float16, 3, 1.0)}
    packed = compact(state, generated, quantized={"big"})
    assert set(packed.tensors) == {"big.q", "big.scale", "small"}
    path = tmp_path / "c.safetensors"
    save_file(packed.tensors, str(path), metadata=manifest_metadata(packed.manifest))
    with safe_open(str(path), framework="pt") as f:
        expanded = expand({k: f.get_tensor(k) for k in f.keys()}, manifest_from_metadata(f.metadata(), path.name))
    assert set(expanded) == set(state)
    for key in ("small", "gone", "norm", "emb"):
        assert torch.equal(expanded[key], state[key]) and expanded[key].dtype == state[key].dtype, key
    assert digest(expanded) == digest(expand(packed.tensors, packed.manifest))


def test_digest_sees_values_dtypes_and_names():
    state = {"a": torch.zeros(3), "b": torch.tensor(1.0)}
    assert digest(state) != digest({**state, "a": torch.tensor([0.0, 0.0, 1e-30])})
    assert digest(state) != digest({**state, "a": torch.zeros(3, dtype=torch.float64)})
    assert digest(state) != digest({"c": state["a"], "b": state["b"]})


def test_missing_stored_tensor_and_missing_manifest_are_named():
    with pytest.raises(IP2PUserError, match=r"the stored weights lack big.q \(needed for big\)"):
        expand({}, {"big": {"form": "int8", "dtype": "float32"}})
    with pytest.raises(IP2PUserError, match="w.safetensors is not a compact weight file of this pack"):
        manifest_from_metadata({"format": "pt"}, "w.safetensors")
