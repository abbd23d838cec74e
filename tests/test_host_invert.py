"""IP2P Invert in a real host: the sampler starts exactly where the inversion arrived, in the
IP2P Sampler and in SamplerCustomAdvanced; noise made for another run is refused with a sentence.

How well an inverted edit keeps the picture is a property of a trained model: measured on the
demo model (benchmarks/RESULTS.md, "Inversion on the demo model"), not here on the tiny random one.
"""
import pytest
import torch
from conftest import IP2P_CKPT, SMALL_IMAGE

from harness.host_graphs import failure, pack_edit
from ip2p_core.formats.latents import Family

pytestmark = pytest.mark.host
INSTRUCTION = "turn the sky into a sunset"
STEPS = 4


def inverted_edit(record: str | None = None, invert: dict | None = None, sampling: dict | None = None,
                  encode: dict | None = None) -> dict:
    """A pack edit (nodes 1-7) whose sampler takes IP2P Invert's noise (node 20; its inverted
    latent saved by node 21); `record` puts the UNet-call recorder (22) on the sampler's model."""
    nodes = {
        "20": {"class_type": "IP2PInvert", "inputs": {
            "model": ["1", 0], "positive": ["5", 0], "negative": ["5", 1], "steps": STEPS, "image_cfg": 1.5,
            "sampler_name": "euler", "scheduler": "simple", "denoise": 1.0, **(invert or {})}},
        "21": {"class_type": "SaveLatent", "inputs": {"samples": ["20", 1], "filename_prefix": "inverted"}},
    }
    sampling = {"noise": ["20", 0], **(sampling or {})}
    if record:
        nodes["22"] = {"class_type": "IP2PTestRecordUNetInput", "inputs": {"model": ["1", 0], "path": record}}
        sampling["model"] = ["22", 0]
    return pack_edit(IP2P_CKPT, SMALL_IMAGE, INSTRUCTION, seed=0, steps=STEPS, text_cfg=7.5, image_cfg=1.5,
                     nodes=nodes, sampling=sampling, encode=encode)


def first_unet_input(record: str) -> tuple[torch.Tensor, float]:
    call = torch.load(record + ".calls.pt")[0]
    return call["unet_input"][:, :4], float(call["sigma"].flatten()[0])


def saved(host, graph: dict, prefix: str) -> torch.Tensor:
    from safetensors.torch import load_file
    outputs = host.output_files(host.run(graph))
    (path,) = [p for p in outputs if p.suffix == ".latent" and p.name.startswith(prefix)]
    return load_file(str(path))["latent_tensor"]


@pytest.mark.parametrize("denoise", [1.0, 0.6])
def test_the_sampler_starts_where_the_inversion_arrived(host, tmp_path, denoise):
    record = str(tmp_path / "unet")
    graph = inverted_edit(record, invert={"denoise": denoise}, sampling={"denoise": denoise,
                                                                         "sampler_name": "euler"})
    inverted = saved(host, graph, "inverted")
    unet_input, sigma = first_unet_input(record)
    # The UNet sees the noisy latent in the model's scale divided by sqrt(sigma^2 + 1) (eps models).
    expected = inverted * Family.SD15.value.scaling_factor / (sigma ** 2 + 1) ** 0.5
    assert torch.allclose(unet_input, expected, rtol=1e-4, atol=1e-5 * float(expected.abs().max()))


def test_samplercustomadvanced_takes_the_same_noise(host):
    """IP2P Guider + SamplerCustomAdvanced with the inverted noise and the same sigmas gives the
    IP2P Sampler's edit."""
    graph = inverted_edit()
    graph.update({
        "30": {"class_type": "IP2PGuider", "inputs": {"model": ["1", 0], "positive": ["5", 0], "negative": ["5", 1],
                                                      "text_cfg": 7.5, "image_cfg": 1.5}},
        "31": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}},
        "32": {"class_type": "BasicScheduler", "inputs": {"model": ["1", 0], "scheduler": "simple", "steps": STEPS,
                                                          "denoise": 1.0}},
        "33": {"class_type": "SamplerCustomAdvanced", "inputs": {"noise": ["20", 0], "guider": ["30", 0],
                                                                 "sampler": ["31", 0], "sigmas": ["32", 0],
                                                                 "latent_image": ["5", 2]}},
        "34": {"class_type": "SaveLatent", "inputs": {"samples": ["33", 0], "filename_prefix": "custom"}},
    })
    pack = saved(host, graph, "pack")
    custom = saved(host, graph, "custom")
    assert torch.allclose(custom, pack, rtol=1e-5, atol=1e-5 * float(pack.abs().max()))


def test_a_sampler_that_adds_noise_is_refused(host):
    message = failure(host, inverted_edit(invert={"sampler_name": "euler_ancestral"}))
    assert "the sampler 'euler_ancestral' adds fresh noise at every step, which undoes an inverted noise" in message
    message = failure(host, inverted_edit(sampling={"sampler_name": "dpmpp_2m_sde"}))
    assert "the sampler 'dpmpp_2m_sde' adds fresh noise at every step" in message


def test_noise_for_another_run_or_size_is_refused(host):
    message = failure(host, inverted_edit(sampling={"steps": STEPS + 2}))
    assert f"IP2P Invert made this noise for {STEPS} steps" in message
    assert f"but the sampler runs {STEPS + 2} steps" in message
    assert "give IP2P Invert the sampler's steps, scheduler and denoise" in message
    message = failure(host, inverted_edit(invert={"scheduler": "karras"}))
    assert "give IP2P Invert the sampler's steps, scheduler and denoise" in message
    # The sampler edits the picture at another size than the inverted one.
    graph = inverted_edit()
    graph["40"] = {"class_type": "IP2PEncode", "inputs": {"positive": ["3", 0], "negative": ["4", 0],
                                                          "vae": ["1", 2], "image": ["2", 0], "resolution": 128}}
    graph["6"]["inputs"].update({"positive": ["40", 0], "negative": ["40", 1]})
    message = failure(host, graph)
    assert "IP2P Invert made this noise for a latent of 64x48 px (4x6x8)" in message
    assert "invert the same image at the same size" in message
