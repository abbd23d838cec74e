"""The host's memory modes, model unloading and interrupt, with the pack's sampler.

The memory-mode hosts are extra servers (one at a time) beside the session host; each runs
the same LoRA + ControlNet edit, compared with the session host's (normal mode) result.

--fp16-unet (and --force-fp16, which implies it in both hosts) stores the UNet and ControlNet
weights in fp16 and, on the CPU, computes in fp32 (the hosts' manual cast). The tiny model's
weights are fp16 values already, so the plain edit is bit-identical; with the LoRA the patched
weights are rounded to fp16, well within the bound of 5e-3 of the latent scale.

--lowvram and --novram are not tested: both hosts refuse them beside --cpu, and without --cpu
they need a CUDA device (upstream at start-up, the PyPI host when loading a checkpoint); on a CPU
device both hosts load every model whole whatever the VRAM state, so those modes would not reach
the partial-loading path here anyway. The README says so rather than claim them.
"""
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch
from conftest import IP2P_CKPT, LORA_IP2P, SD_CKPT, extra_host
from reference import relative_diff
from test_host_compose import pack_graph, patched_model, with_controlnet, with_lora

from harness.host_graphs import saved_latent
from tools.comfy_host import HostError

pytestmark = pytest.mark.host

# mode: (extra arguments, tolerance against the normal-mode edit)
MODES = {
    "fp16-unet": (["--fp16-unet"], 5e-3),
    "force-fp16": (["--force-fp16"], 5e-3),  # implies --fp16-unet in both hosts
}


def stacked_edit():
    """The pack's edit with a LoRA (UNet and text encoder) and a ControlNet."""
    return with_controlnet(with_lora(pack_graph(), LORA_IP2P, 1.0, 1.0))


def loaded_models(host, graph, sampled: str, loader: str = "1") -> list[dict]:
    """What the host holds loaded once node `sampled` ran; "ours": a model of `loader`'s outputs."""
    probe = {"class_type": "IP2PTestLoadedModels", "inputs": {
        "samples": [sampled, 0], "model": [loader, 0], "clip": [loader, 1], "vae": [loader, 2]}}
    outputs = host.run({**graph, "90": probe})
    return outputs["90"]["loaded"]


@pytest.fixture(scope="module")
def normal_mode(host):
    return saved_latent(host, pack_graph()), saved_latent(host, stacked_edit())


@pytest.fixture(scope="module", params=list(MODES))
def mode_host(request, tmp_path_factory, tiny_ip2p, demo, patch_files, test_images):
    args, tolerance = MODES[request.param]
    with extra_host(tmp_path_factory.mktemp(request.param), args, tiny_ip2p, demo, patch_files,
                    test_images) as host:
        yield request.param, host, tolerance


def test_memory_mode_gives_the_normal_mode_edit(mode_host, normal_mode):
    mode, host, tolerance = mode_host
    plain, stacked = normal_mode
    # The tiny model's weights are fp16 values: stored in fp16, computed in fp32, nothing changes.
    assert torch.equal(saved_latent(host, pack_graph()), plain)
    graph = stacked_edit()
    diff = relative_diff(saved_latent(host, graph), stacked)
    assert diff < tolerance, f"{mode}: {diff:.3g} of the latent scale from the normal-mode edit"
    loaded = loaded_models(host, graph, "6")
    unet = [m for m in loaded if m["ours"] and "instructpix2pix" in m["class"].lower()]
    assert [m["dtype"] for m in unet] == ["torch.float16"], f"the IP2P UNet was not stored in fp16: {loaded}"


def test_a_second_model_does_not_keep_the_first_loaded(host, tiny_ip2p):
    """After an edit, a prompt with another model leaves only that prompt's models loaded."""
    saved_latent(host, pack_graph())
    other = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": SD_CKPT}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": "a house"}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": ""}},
        "4": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 48, "batch_size": 1}},
        "5": {"class_type": "KSampler", "inputs": {
            "model": ["1", 0], "positive": ["2", 0], "negative": ["3", 0], "latent_image": ["4", 0], "seed": 0,
            "steps": 2, "cfg": 7.0, "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0}},
    }
    loaded = loaded_models(host, other, "5")
    assert loaded, "the probe saw no loaded model at all"
    assert all(m["ours"] for m in loaded), f"models of an earlier prompt are still loaded: {loaded}"
    # ... and back: a second IP2P checkpoint (another file) after the plain model.
    second = host.add_model("checkpoints", tiny_ip2p.checkpoint, "tiny_ip2p_second.safetensors")
    graph = pack_graph()
    graph["1"]["inputs"]["ckpt_name"] = second
    loaded = loaded_models(host, graph, "6")
    assert all(m["ours"] for m in loaded), f"models of an earlier prompt are still loaded: {loaded}"


def test_free_endpoint_unloads_the_models(host):
    saved_latent(host, pack_graph())
    host.free(unload_models=True, free_memory=False)
    nothing_sampled = {"1": {"class_type": "IP2PCheckpointLoader", "inputs": {"ckpt_name": IP2P_CKPT}},
                       "2": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 48, "batch_size": 1}}}
    deadline = time.monotonic() + 30
    while (loaded := loaded_models(host, nothing_sampled, "2")) and time.monotonic() < deadline:
        time.sleep(0.5)  # the host's worker applies /free between prompts
    assert loaded == []


def count_lines(path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_interrupt_stops_within_a_step_and_the_next_edit_runs(host, tmp_path):
    reference = saved_latent(host, pack_graph())
    steps_log = tmp_path / "steps.log"
    long_run = pack_graph()
    long_run["6"]["inputs"]["steps"] = 200
    # The probe's post-CFG hook logs each step and sleeps 0.5 s in it: a slow model, countable.
    long_run = patched_model(long_run, "IP2PTestStepLog", path=str(steps_log), delay=0.5)
    with ThreadPoolExecutor(1) as pool:
        run = pool.submit(host.run, long_run, 300)
        deadline = time.monotonic() + 120
        while count_lines(steps_log) < 3:
            assert time.monotonic() < deadline and not run.done(), "sampling did not start"
            time.sleep(0.05)
        at_interrupt = count_lines(steps_log)
        started = time.monotonic()
        host.interrupt()
        with pytest.raises(HostError) as info:
            run.result(timeout=60)
        waited = time.monotonic() - started
    assert info.value.kind == "interrupted", str(info.value)
    # The step under way when the interrupt came finishes; no further one starts.
    assert count_lines(steps_log) - at_interrupt <= 1
    assert waited < 10
    assert torch.equal(saved_latent(host, pack_graph()), reference)
