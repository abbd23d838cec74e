"""Step caching on the host's own UNet class, run in this process (no server).

A fill call must be the plain UNet; a reuse call must be exactly the plain UNet with the deep
blocks replaced by the kept feature, and must not run them.
"""
import pytest
import torch

from ip2p_core.errors import IP2PUserError
from ip2p_core.inference.step_cache import StepCache, cached_block, deep_blocks

openaimodel = pytest.importorskip("comfy.ldm.modules.diffusionmodules.openaimodel")
comfy_ops = pytest.importorskip("comfy.ops")
attention = pytest.importorskip("comfy.ldm.modules.attention")

CONTEXT_DIM = 16


def is_transformer(layer) -> bool:
    return isinstance(layer, attention.SpatialTransformer)


def tiny_unet() -> torch.nn.Module:
    """Two levels, a transformer in each block: 8 input channels as an IP2P UNet has."""
    torch.manual_seed(0)
    unet = openaimodel.UNetModel(
        image_size=None, in_channels=8, model_channels=32, out_channels=4, num_res_blocks=[1, 1],
        channel_mult=(1, 2), num_head_channels=16, use_spatial_transformer=True, legacy=False,
        transformer_depth=[1, 1], transformer_depth_middle=1, transformer_depth_output=[1, 1, 1, 1],
        context_dim=CONTEXT_DIM, operations=comfy_ops.disable_weight_init)
    for parameter in unet.parameters():
        torch.nn.init.normal_(parameter, std=0.2)
    return unet.eval()


def inputs(seed: int, t: float):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(3, 8, 8, 8, generator=g), torch.full((3,), t), torch.randn(3, 5, CONTEXT_DIM, generator=g)


def with_cache(unet, interval: int, depth: int = 1) -> StepCache:
    """Swaps the deep blocks in place, as the host's object patches do."""
    cache = StepCache(interval)
    for deep in deep_blocks(unet, depth):
        parent, index = deep.path.rsplit(".", 1) if "." in deep.path else ("", deep.path)
        owner = unet.get_submodule(parent) if parent else unet
        setattr(owner, index, cached_block(deep, cache, is_transformer))
    return cache


def call(unet, cache, key, sigma, x, t, context):
    """The UNet's output, its transformer options and the cache's mode for the call."""
    options = {}
    cache.begin_call(key, sigma, options)
    mode = cache.mode
    out = unet(x, t, context=context, transformer_options=options)
    cache.end_call(completed=True)
    return out, options, mode


@torch.no_grad()
def test_fill_is_the_plain_unet_and_reuse_swaps_in_the_kept_feature():
    plain, patched = tiny_unet(), tiny_unet()
    cache = with_cache(patched, interval=2)
    after_boundary = int([d.path for d in deep_blocks(plain, 1) if d.boundary][0].rsplit(".", 1)[1]) + 1
    x1, t1, ctx = inputs(1, 900.0)
    x2, t2, _ = inputs(2, 800.0)

    # The host's loop calls blocks directly (no module hooks): its own output-block patch
    # sees the boundary block's output as `h` before the next block.
    kept = {}

    def keep(h, hsp, options):
        if options["block"] == ("output", after_boundary):
            kept["h"] = h
        return h, hsp

    def swap_in(h, hsp, options):
        return (kept["h"] if options["block"] == ("output", after_boundary) else h), hsp

    expected_fill = plain(x1, t1, context=ctx, transformer_options={"patches": {"output_block_patch": [keep]}})
    fill, _, mode = call(patched, cache, "k", 14.0, x1, t1, ctx)
    assert mode == "fill" and torch.equal(fill, expected_fill)

    plain_options = {"patches": {"output_block_patch": [swap_in]}}
    expected_reuse = plain(x2, t2, context=ctx, transformer_options=plain_options)
    assert not torch.equal(expected_reuse, plain(x2, t2, context=ctx, transformer_options={}))
    deep_calls = []
    for deep in deep_blocks(patched, 1):
        for layer in deep.block:
            layer.register_forward_hook(lambda *a: deep_calls.append(1))
    reuse, options, mode = call(patched, cache, "k", 12.0, x2, t2, ctx)
    assert mode == "reuse" and deep_calls == []
    assert torch.equal(reuse, expected_reuse)
    assert options["transformer_index"] == plain_options["transformer_index"]


@torch.no_grad()
def test_the_cache_fills_again_after_interval_steps_for_a_new_batch_and_a_new_run():
    unet = tiny_unet()
    cache = with_cache(unet, interval=3)
    x, t, ctx = inputs(0, 500.0)
    modes = []
    for key, sigma in [("a", 10.0), ("a", 8.0), ("b", 8.0), ("a", 6.0), ("a", 4.0), ("a", 2.0), ("a", 9.0)]:
        cache.begin_call(key, sigma, {})
        modes.append(cache.mode)
        unet(x, t, context=ctx, transformer_options={})
        cache.end_call(completed=True)
    # a: filled at step 0, reused at 1 and 2, filled at 3, reused at 4; b: its own fill;
    # a sigma above the last starts a new run.
    assert modes == ["fill", "reuse", "fill", "reuse", "fill", "reuse", "fill"]


@torch.no_grad()
def test_calls_alike_within_a_step_keep_an_entry_each():
    """The host may split a step's predictions over two calls of the same shape and kind."""
    unet = tiny_unet()
    cache = with_cache(unet, interval=2)
    modes = []
    for sigma in (10.0, 10.0, 8.0, 8.0):
        x, t, ctx = inputs(int(sigma), 500.0)
        cache.begin_call("same", sigma, {})
        modes.append(cache.mode)
        unet(x, t, context=ctx, transformer_options={})
        cache.end_call(completed=True)
    assert modes == ["fill", "fill", "reuse", "reuse"]


@torch.no_grad()
def test_an_interrupted_fill_is_not_reused_and_outside_a_call_the_blocks_are_plain():
    plain, patched = tiny_unet(), tiny_unet()
    cache = with_cache(patched, interval=2)
    x, t, ctx = inputs(0, 500.0)
    cache.begin_call("k", 5.0, {})
    cache.end_call(completed=False)
    cache.begin_call("k", 4.0, {})
    assert cache.mode == "fill"
    cache.end_call(completed=True)
    assert torch.equal(patched(x, t, context=ctx, transformer_options={}),
                       plain(x, t, context=ctx, transformer_options={}))


def test_the_swapped_blocks_keep_the_weight_keys():
    plain, patched = tiny_unet(), tiny_unet()
    with_cache(patched, interval=2)
    assert list(patched.state_dict()) == list(plain.state_dict())


def test_bad_depth_and_a_model_without_unet_blocks_are_refused_with_a_sentence():
    unet = tiny_unet()
    with pytest.raises(IP2PUserError, match=r"cache_depth must be between 1 and \d+ .* got 0"):
        deep_blocks(unet, 0)
    with pytest.raises(IP2PUserError, match="needs a UNet with input and output blocks .* Linear"):
        deep_blocks(torch.nn.Linear(2, 2), 1)
    with pytest.raises(IP2PUserError, match="cache_interval must be at least 1"):
        StepCache(0)
