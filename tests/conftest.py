"""Shared fixtures: test models, test images and one real host.

The host is started once per test process (a few seconds) with the models and images in its
folders; tests then queue graphs on it as a user's ComfyUI would run them. Two IP2P models: the
generated tiny one (`harness/model_factory.py`) for the mechanics tests, whose bounds need what
only it has (fp16-exact weights, an AutoencoderKL whose posterior a host may sample), and the
shipped demo model in its file shapes (`harness/demo_files.py`) for everything else: behaviour,
the 4-channel "SD" model, EMA, training, tools and workflows.
"""
import contextlib
from pathlib import Path

import pytest
from patch_factory import build_patch_files, patches_version
from PIL import Image
from upscale_factory import write_upscale_model

from harness.demo_files import DemoFiles, cached_demo_files
from harness.model_factory import (
    build_sd15_ip2p,
    factory_version,
    file_lock,
    prune_stale_builds,
    write_corrupt_checkpoint,
)
from harness.sd3_model_factory import sd3_family_version
from harness.sdxl_model_factory import build_sdxl_family, sdxl_family_version
from tools.comfy_host import ComfyHost

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent

MODEL_CACHE = REPO / ".cache" / "test_models"
IP2P_CKPT = "tiny_ip2p.safetensors"
DEMO_FILE = "demo_expanded.safetensors"  # the demo model as a file, for ComfyUI's own loader too
SD_CKPT = "demo_as_sd.safetensors"  # the demo model cut to 4 input channels: an ordinary SD1.5 model
DAMAGED_CKPT = "damaged.safetensors"
GONE_CKPT = "gone.safetensors"
SMALL_IMAGE = "small.png"  # 64x48: latent 8x6
ODD_IMAGE = "odd.png"  # 61x45: not multiples of 8
# LoRAs and ControlNet for the tiny model (tests/patch_factory.py). The names workflows use
# are those of workflows/ip2p_lora_controlnet.api.json, so the shipped file runs unchanged.
LORA_IP2P = "ip2p_example_lora.safetensors"  # conv_in for 8 channels
LORA_CORE = "ip2p_test_core_lora.safetensors"  # attention only
LORA_PLAIN_SD15 = "sd15_test_lora.safetensors"  # attention + conv_in for 4 channels
CONTROLNET = "control_v11p_sd15_canny_fp16.safetensors"
SMALL_MASK = "small_mask.png"  # the example's sky, 64x48
OTHER_IMAGE = "other.png"  # 64x48, another picture, for batches
DEMO_IMAGE = "shapes.png"  # examples/shapes.png, a scene of the demo model's domain


def pytest_sessionstart(session):
    """This checkout's test models from before the last factory edit are never used again (pruned
    once, by the process that hands the tests to the others when they run in parallel)."""
    if not hasattr(session.config, "workerinput"):
        prune_stale_builds(MODEL_CACHE, keep={factory_version(), sdxl_family_version(), sd3_family_version(),
                                                  patches_version()})


# Test files of a minute or more, handed out first and in this order (harness/test.sh turns off
# xdist's own reordering, by tests per file, which handed out the one-test recipe file last): the
# test processes take files from one queue, and a long one taken last keeps the other process idle.
# The recipe's quick run goes first, so that its big temporary turn ends before the others ask.
LONGEST_FIRST = ("test_demo_recipe_quick.py", "test_frontend_workflows.py", "test_host_demo_edits.py",
                 "test_batch_ray.py", "test_benchmark_quick.py", "test_host_ultraedit.py", "test_host_controls.py",
                 "test_host_compose.py", "test_host_compose_memory.py")


def pytest_collection_modifyitems(items):
    def rank(item) -> int:
        name = item.path.name
        return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: each file keeps its order


@contextlib.contextmanager
def one_big_temporary():
    """Tests whose temporary files take half a gigabyte or more (the recipe's quick run, 1.2 GB;
    two saved checkpoints and the EMA copies, 0.6 GB each) take turns across the test processes,
    so that two never sit on the disk at once: a full run stays within 6 GB beside the venv."""
    MODEL_CACHE.mkdir(parents=True, exist_ok=True)
    with file_lock(MODEL_CACHE / ".big-temporaries.lock"):
        yield


@pytest.fixture
def big_temporary_turn():
    """`one_big_temporary` for the length of a test. Asked for before tmp_path, it ends after pytest
    has deleted a passing test's tmp_path (fixtures end in the reverse order)."""
    with one_big_temporary():
        yield


@pytest.fixture(scope="session")
def demo() -> DemoFiles:
    """The shipped demo model in its file shapes (harness/demo_files.py), once per model version."""
    return cached_demo_files()


@pytest.fixture(scope="session")
def tiny_ip2p(request):
    if getattr(request.config, "workerinput", {}).get("workerid") == "gw1":
        # Both test processes start by needing this model: the second builds the SDXL family (which
        # a full run needs later) meanwhile, instead of waiting on the first's lock (a first run).
        build_sdxl_family(MODEL_CACHE)
    return build_sd15_ip2p(MODEL_CACHE)


def patches(model, root, own_folder=False):
    """LoRAs and a ControlNet of `model`'s shapes (tests/patch_factory.py); test processes take turns.
    With `own_folder` (a folder that holds only patches), earlier versions' builds there are removed."""
    root.mkdir(parents=True, exist_ok=True)
    with file_lock(root / ".patches.lock"):
        files = build_patch_files(model, root)
        if own_folder:
            prune_stale_builds(root, keep={patches_version()})
        return files


@pytest.fixture(scope="session")
def patch_files(tiny_ip2p):
    return patches(tiny_ip2p, MODEL_CACHE)


def add_models(host, tiny_ip2p, demo: DemoFiles, patch_files, test_images):
    """The checkpoints, LoRAs, ControlNet and images, under the names tests use."""
    host.add_model("checkpoints", tiny_ip2p.checkpoint, IP2P_CKPT)
    host.add_model("checkpoints", demo.model.checkpoint, DEMO_FILE)
    host.add_model("checkpoints", demo.sd_checkpoint, SD_CKPT)
    host.add_model("loras", patch_files.lora_ip2p, LORA_IP2P)
    host.add_model("loras", patch_files.lora_core, LORA_CORE)
    host.add_model("loras", patch_files.lora_plain_sd15, LORA_PLAIN_SD15)
    host.add_model("controlnet", patch_files.controlnet, CONTROLNET)
    for path in test_images.values():
        host.add_input(path)
    host.add_input(REPO / "examples" / DEMO_IMAGE)


@pytest.fixture(scope="session")
def test_images(tmp_path_factory):
    """The example picture at test sizes: small keeps the tiny model fast on the CPU."""
    folder = tmp_path_factory.mktemp("images")
    example = Image.open(REPO / "examples" / "landscape.png").convert("RGB")
    paths = {}
    for name, size in ((SMALL_IMAGE, (64, 48)), (ODD_IMAGE, (61, 45))):
        paths[name] = folder / name
        example.resize(size, Image.LANCZOS).save(paths[name])
    paths[OTHER_IMAGE] = folder / OTHER_IMAGE
    example.crop((256, 0, 512, 192)).resize((64, 48), Image.LANCZOS).save(paths[OTHER_IMAGE])
    paths[SMALL_MASK] = folder / SMALL_MASK
    Image.open(REPO / "examples" / "landscape_sky_mask.png").resize((64, 48), Image.NEAREST).save(paths[SMALL_MASK])
    return paths


@pytest.fixture(scope="session")
def upscale_model(host, tmp_path_factory):
    """A tiny 2x upscale model (tests/upscale_factory.py) in the session host's models/upscale_models."""
    path = write_upscale_model(tmp_path_factory.mktemp("upscale") / "tiny_compact_2x.safetensors")
    return host.add_model("upscale_models", path)


@pytest.fixture(scope="session")
def host(tmp_path_factory, tiny_ip2p, demo, patch_files, test_images):
    # fp32 text encoder: on the CPU both hosts default to fp16 for CLIP, and the parity tests
    # compare against diffusers in fp32.
    host = ComfyHost(tmp_path_factory.mktemp("host"), extra_args=["--fp32-text-enc"])
    (host.custom_nodes_dir / "ip2p_test_probes").symlink_to(TESTS / "probe_pack")
    checkpoints = host.models_dir / "checkpoints"
    checkpoints.mkdir(parents=True, exist_ok=True)
    write_corrupt_checkpoint(checkpoints / DAMAGED_CKPT)
    (checkpoints / GONE_CKPT).symlink_to(checkpoints / "deleted-after-listing.safetensors")
    with host:
        add_models(host, tiny_ip2p, demo, patch_files, test_images)
        yield host


@pytest.fixture(scope="session")
def demo_files(host, demo):
    """Names, as the session host lists them, of the demo model's files by with_inputs kind."""
    demo_patches = patches(demo.model, demo.model.root / "patches", own_folder=True)
    names = {
        "diffusers": host.add_model("diffusers", demo.model.diffusers_dir, "demo_shapes"),
        "unet": host.add_model("unet", demo.unet),
        "clip": host.add_model("clip", demo.clip),
        "vae": host.add_model("vae", demo.vae),
        "sd_checkpoint": SD_CKPT,
        "lora": host.add_model("loras", demo_patches.lora_ip2p, "demo_ip2p_lora.safetensors"),
        "controlnet": host.add_model("controlnet", demo_patches.controlnet, "demo_controlnet.safetensors"),
    }
    host.object_info(refresh=True)
    return names


@contextlib.contextmanager
def extra_host(base_dir, flags, tiny_ip2p, demo, patch_files, test_images, env=None):
    """Another running host like the session one (probes, models, images), started with `flags`
    (and environment variables `env`)."""
    host = ComfyHost(base_dir, extra_args=["--fp32-text-enc", *flags], env=env)
    (host.custom_nodes_dir / "ip2p_test_probes").symlink_to(TESTS / "probe_pack")
    with host:
        add_models(host, tiny_ip2p, demo, patch_files, test_images)
        yield host
