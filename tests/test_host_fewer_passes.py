"""Fewer passes and step caching through the pack's nodes, in a real host.

A term turned off must give exactly the edit of the scales it collapses to and skip its
prediction (counted per UNet call by the probe pack's recorder); step caching must change
nothing at interval 1, take effect above it, keep weight patches working and leave the
uncached model untouched.
"""
import pytest
import torch
from conftest import IP2P_CKPT, LORA_CORE, SMALL_IMAGE

from benchmarks.fewer_passes import custom_inputs
from harness.host_graphs import pack_edit, saved_latent
from ip2p_core.inference.fewer_passes import PRESETS

pytestmark = pytest.mark.host
INSTRUCTION = "turn the sky into a sunset"
STEPS = 6
SEED = 3


def fewer_passes(text=(0.0, 1.0), image=(0.0, 1.0), stop_when_agree=1.0, cache_interval=1, cache_depth=1) -> dict:
    return {"class_type": "IP2PFewerPassesCustom", "inputs": {
        "text_start": text[0], "text_end": text[1], "image_start": image[0], "image_end": image[1],
        "stop_when_agree": stop_when_agree, "cache_interval": cache_interval, "cache_depth": cache_depth}}


def edit(text_cfg=7.5, image_cfg=1.5, saving: dict | None = None, record: str | None = None,
         sampling: dict | None = None, model_nodes: dict | None = None, image=SMALL_IMAGE):
    """A pack edit; `saving` feeds fewer_passes (node 20), `record` puts the probe's UNet-call
    recorder (node 21) on the model, `model_nodes` are MODEL patches chained from node 30 up."""
    nodes, sampling = dict(model_nodes or {}), dict(sampling or {})
    model = [max(nodes), 0] if nodes else ["1", 0]
    if record:
        nodes["21"] = {"class_type": "IP2PTestRecordUNetInput", "inputs": {"model": model, "path": record}}
        model = ["21", 0]
    if saving:
        nodes["20"] = saving
        sampling["fewer_passes"] = ["20", 0]
    graph = pack_edit(IP2P_CKPT, image, INSTRUCTION, seed=SEED, steps=STEPS, text_cfg=text_cfg,
                      image_cfg=image_cfg, sampling=sampling, nodes=nodes)
    graph["6"]["inputs"]["model"] = model
    return graph


def predictions_per_call(record: str) -> list[int]:
    return [len(call["cond_or_uncond"]) for call in torch.load(record + ".calls.pt")]


@pytest.fixture(scope="module")
def plain(host):
    return saved_latent(host, edit())


def test_the_default_settings_are_todays_edit(host, plain, tmp_path):
    record = str(tmp_path / "unet")
    assert torch.equal(saved_latent(host, edit(saving=fewer_passes(), record=record)), plain)
    assert predictions_per_call(record) == [3] * STEPS


@pytest.mark.parametrize("settings, scales, per_call", [
    ({"text": (0.0, 0.0)}, (1.5, 1.5), 2),   # text off: CFG on instruction + image at the image scale
    ({"image": (0.0, 0.0)}, (7.5, 1.0), 2),  # image off: image scale 1
    ({"text": (0.0, 0.0), "image": (0.0, 0.0)}, (1.0, 1.0), 1),
])
def test_a_term_off_everywhere_is_the_edit_at_the_scales_it_collapses_to(host, tmp_path, settings, scales, per_call):
    record = str(tmp_path / "unet")
    assert torch.equal(saved_latent(host, edit(saving=fewer_passes(**settings), record=record)),
                       saved_latent(host, edit(*scales)))
    assert predictions_per_call(record) == [per_call] * STEPS


def test_a_guidance_interval_skips_the_pass_outside_its_range_only(host, tmp_path):
    record = str(tmp_path / "unet")
    latent = saved_latent(host, edit(saving=fewer_passes(text=(0.0, 0.5)), record=record))
    counts = predictions_per_call(record)
    inside = counts.count(3)
    assert 0 < inside < STEPS and counts == [3] * inside + [2] * (STEPS - inside)
    # The same edit as a per-step text scale: 7.5 while the term is on, the image scale after.
    schedule = {"20": {"class_type": "IP2PGuidanceSchedule", "inputs": {
        "kind": "list", "start": 0.0, "end": 0.0, "values": ", ".join(["7.5"] * inside + ["1.5"] * (STEPS - inside))}}}
    scheduled = edit(sampling={"text_cfg_schedule": ["20", 0]})
    scheduled.update(schedule)
    assert torch.equal(latent, saved_latent(host, scheduled))


def test_a_term_whose_predictions_agree_stops_and_at_1_none_does(host, tmp_path):
    record = str(tmp_path / "unet")
    saved_latent(host, edit(saving=fewer_passes(stop_when_agree=0.9), record=record))
    counts = predictions_per_call(record)
    assert counts[0] == 3 and counts[-1] < 3 and counts == sorted(counts, reverse=True)


def preset(name: str) -> dict:
    return {"class_type": "IP2PFewerPasses", "inputs": {"preset": name}}


def test_the_faithful_preset_is_todays_edit(host, plain, tmp_path):
    record = str(tmp_path / "unet")
    assert torch.equal(saved_latent(host, edit(saving=preset("faithful"), record=record)), plain)
    assert predictions_per_call(record) == [3] * STEPS


@pytest.mark.parametrize("name", [name for name in PRESETS if name != "faithful"])
def test_a_preset_is_the_custom_settings_it_names(host, plain, name):
    latent = saved_latent(host, edit(saving=preset(name)))
    custom = {"class_type": "IP2PFewerPassesCustom", "inputs": custom_inputs(PRESETS[name])}
    assert torch.equal(latent, saved_latent(host, edit(saving=custom)))
    assert not torch.equal(latent, plain)


def step_cache(interval: int, model=("1", 0)) -> dict:
    return {"class_type": "IP2PStepCache", "inputs": {"model": list(model), "cache_interval": interval,
                                                      "cache_depth": 1}}


def test_step_caching_at_interval_1_is_todays_edit_and_above_changes_it(host, plain):
    assert torch.equal(saved_latent(host, edit(model_nodes={"30": step_cache(1)})), plain)
    cached = saved_latent(host, edit(model_nodes={"30": step_cache(2)}))
    assert torch.isfinite(cached).all() and not torch.equal(cached, plain)
    # The same through the fewer_passes input; after it, the uncached model is untouched (the
    # same picture under another name makes the host run the edit again instead of reusing it).
    assert torch.equal(saved_latent(host, edit(saving=fewer_passes(cache_interval=2))), cached)
    again = host.add_input(host.input_dir / SMALL_IMAGE, "small_again.png")
    assert torch.equal(saved_latent(host, edit(image=again)), plain)


def test_step_caching_keeps_weight_patches(host):
    lora = {"30": {"class_type": "LoraLoaderModelOnly", "inputs": {"model": ["1", 0], "lora_name": LORA_CORE,
                                                                   "strength_model": 1.0}}}
    cached = saved_latent(host, edit(model_nodes={"31": step_cache(2)}))
    cached_with_lora = saved_latent(host, edit(model_nodes={**lora, "31": step_cache(2, ("30", 0))}))
    assert not torch.equal(cached, cached_with_lora)
