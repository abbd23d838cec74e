"""The training command on a miniature SD: widening, outputs, exact resume, and the errors users hit."""
import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file
from train_fixtures import shape_pairs, small_sd  # noqa: F401 (fixtures)

from ip2p_core.errors import IP2PUserError
from training.paired_data import image_to_tensor, load_pair, read_pairs
from training.train import ENCODINGS_FILE, TrainOptions, learning_rate, parse_args, train
from training.train_checkpoints import STATE_FILE, UNET_FILE
from training.train_step import CHANGED_CELL, Batch, FrozenEncoders, changed_cells, encode_text, ip2p_loss
from training.trainable_model import load_model, vae_moments


def options(small_sd, data, output, **overrides):
    values = dict(model=small_sd, data=data, output=output, resolution=16, batch_size=2, steps=3,
                  checkpoint_every=1, learning_rate=1e-3, ema=True, ema_decay=0.9, progress=False)
    return TrainOptions(**{**values, **overrides})


def test_widened_sd_unet_ignores_the_image_channels_until_trained(small_sd):
    from diffusers import UNet2DConditionModel

    sd = UNet2DConditionModel.from_pretrained(small_sd, subfolder="unet").eval()
    ip2p = load_model(small_sd).unet.eval()
    assert ip2p.config.in_channels == 8 and torch.equal(ip2p.conv_in.weight[:, 4:], torch.zeros_like(ip2p.conv_in.weight[:, 4:]))
    x, image, text = torch.randn(1, 4, 4, 4), torch.randn(1, 4, 4, 4), torch.randn(1, 77, 64)
    with torch.no_grad():
        assert torch.equal(ip2p(torch.cat([x, image], 1), 10, text).sample, sd(x, 10, text).sample)


@pytest.mark.slow
def test_run_writes_a_loadable_ip2p_model_and_a_loss_log(small_sd, shape_pairs, tmp_path):
    result = train(options(small_sd, shape_pairs, tmp_path / "run", lr_decay_steps=2))
    log = [json.loads(line) for line in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    assert [entry["step"] for entry in log] == [1, 2, 3] and all(entry["loss"] > 0 for entry in log)
    assert [entry["lr"] for entry in log] == pytest.approx([1e-3, 1e-3, 5e-4])
    trained = load_model(result.diffusers_dir)
    assert trained.unet.config.in_channels == 8
    assert not torch.equal(trained.unet.conv_in.weight[:, 4:], torch.zeros_like(trained.unet.conv_in.weight[:, 4:]))
    single = load_file(str(result.single_file))
    assert single["model.diffusion_model.input_blocks.0.0.weight"].shape[1] == 8
    assert torch.equal(single["model.diffusion_model.input_blocks.0.0.weight"], trained.unet.conv_in.weight)


@pytest.mark.slow
@pytest.mark.parametrize("cache", [False, True], ids=["encoded-per-batch", "cached-encodings"])
def test_resumed_run_equals_an_uninterrupted_one(small_sd, shape_pairs, tmp_path, cache):
    train(options(small_sd, shape_pairs, tmp_path / "straight", cache_encodings=cache))
    with pytest.raises(IP2PUserError, match="already holds a training run: pass --resume latest"):
        train(options(small_sd, shape_pairs, tmp_path / "straight"))
    train(options(small_sd, shape_pairs, tmp_path / "resumed", steps=2, cache_encodings=cache))
    shutil.rmtree(tmp_path / "resumed" / "diffusers")
    (tmp_path / "resumed" / "resumed.safetensors").unlink()
    train(options(small_sd, shape_pairs, tmp_path / "resumed", resume="latest", cache_encodings=cache))
    assert (tmp_path / "resumed" / ENCODINGS_FILE).is_file() == cache
    straight = load_file(str(tmp_path / "straight" / "checkpoints" / "step-00000003" / UNET_FILE))
    resumed = load_file(str(tmp_path / "resumed" / "checkpoints" / "step-00000003" / UNET_FILE))
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)
    assert load_file(str(tmp_path / "straight" / "straight.safetensors")).keys() == \
        load_file(str(tmp_path / "resumed" / "resumed.safetensors")).keys()


@pytest.mark.slow
def test_cached_encodings_are_each_item_encoded_alone(small_sd, shape_pairs):
    model = load_model(small_sd)
    pairs = read_pairs(shape_pairs)
    pixels = torch.stack([image_to_tensor(load_pair(pair)[0]) for pair in pairs])
    prompts = [pair.instruction for pair in pairs]
    cached, per_batch = FrozenEncoders(model, cache=True), FrozenEncoders(model)
    moments = cached.moments(pixels)
    for index in range(len(pairs)):
        assert torch.equal(moments[index:index + 1], vae_moments(model.vae, pixels[index:index + 1]))
        assert torch.equal(cached.text(prompts)[index:index + 1], encode_text(model, prompts[index:index + 1]))
    torch.testing.assert_close(moments, per_batch.moments(pixels), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(cached.text(prompts), per_batch.text(prompts), rtol=1e-4, atol=1e-5)
    assert torch.equal(cached.moments(pixels.flip(0)), moments.flip(0))  # looked up by content



@pytest.mark.slow
def test_saved_encodings_are_taken_by_a_resumed_run_of_the_same_encoders_only(small_sd, shape_pairs, tmp_path,
                                                                            monkeypatch):
    pairs = read_pairs(shape_pairs)
    pixels = torch.stack([image_to_tensor(load_pair(pair)[0]) for pair in pairs])
    prompts = [pair.instruction for pair in pairs]
    first = FrozenEncoders(load_model(small_sd), cache=True)
    moments, text = first.moments(pixels), first.text(prompts)
    first.save(tmp_path / "encodings.pt")

    other_model = load_model(small_sd)
    with torch.no_grad():
        next(other_model.vae.parameters()).add_(1.0)
    assert not FrozenEncoders(other_model, cache=True).load(tmp_path / "encodings.pt")

    resumed = FrozenEncoders(load_model(small_sd), cache=True)
    assert resumed.load(tmp_path / "encodings.pt")
    refuse = lambda *args: pytest.fail("a saved encoding was computed again")  # noqa: E731
    monkeypatch.setattr("training.train_step.vae_moments", refuse)
    monkeypatch.setattr("training.train_step.encode_text", refuse)
    assert torch.equal(resumed.moments(pixels), moments) and torch.equal(resumed.text(prompts), text)

def test_bad_data_stops_the_run_and_keeps_the_last_checkpoint(small_sd, shape_pairs, tmp_path):
    data = shutil.copytree(shape_pairs, tmp_path / "data")
    train(options(small_sd, data, tmp_path / "run", steps=2, ema=False))
    for pair in data.iterdir():
        (pair / "edited.png").write_bytes(b"truncated")
    with pytest.raises(IP2PUserError, match=r"cannot read .*edited.png .*Training stopped at step 2; the last "
                                            r"checkpoint, step-00000002, is kept"):
        train(options(small_sd, data, tmp_path / "run", steps=4, ema=False, resume="latest"))
    assert (tmp_path / "run" / "checkpoints" / "step-00000002" / UNET_FILE).is_file()


def test_resuming_from_a_four_channel_checkpoint_is_refused(small_sd, shape_pairs, tmp_path):
    from diffusers import UNet2DConditionModel

    checkpoint = tmp_path / "sd_checkpoint"
    checkpoint.mkdir()
    unet = UNet2DConditionModel.from_pretrained(small_sd, subfolder="unet")
    save_file({k: v.contiguous() for k, v in unet.state_dict().items()}, str(checkpoint / UNET_FILE))
    (checkpoint / STATE_FILE).write_text(json.dumps({"step": 5, "ema": False}))
    with pytest.raises(IP2PUserError, match=r"its UNet has a 4-channel conv_in, but this run trains an InstructPix2Pix "
                                            r"UNet with 8 input channels"):
        train(options(small_sd, shape_pairs, tmp_path / "run", resume=str(checkpoint)))


def test_resume_of_nothing_is_explained(small_sd, shape_pairs, tmp_path):
    with pytest.raises(IP2PUserError, match="holds no checkpoint yet"):
        train(options(small_sd, shape_pairs, tmp_path / "run", resume="latest"))
    with pytest.raises(IP2PUserError, match="is not a training checkpoint"):
        train(options(small_sd, shape_pairs, tmp_path / "run", resume=str(tmp_path)))


def test_command_line(tmp_path, capsys):
    parsed = parse_args(["--model", "m", "--data", "d", "--output", "o", "--ema", "--instruction-column", "text"])
    assert parsed.ema and parsed.columns.instruction == "text" and parsed.resolution == 256
    with pytest.raises(SystemExit):
        parse_args(["--model", "m", "--data", "d", "--output", "o", "--resolution", "100"])
    assert "multiple of 8" in capsys.readouterr().err
    assert parse_args(["--model", "m", "--data", "d", "--output", "o", "--lr-decay-steps", "3"]).lr_decay_steps == 3
    with pytest.raises(SystemExit):
        parse_args(["--model", "m", "--data", "d", "--output", "o", "--lr-decay-steps", "-1"])
    assert "--lr-decay-steps must be 0 or more" in capsys.readouterr().err


def test_learning_rate_is_constant_then_falls_linearly_over_the_last_steps():
    run = TrainOptions(model="m", data="d", output="o", learning_rate=1e-3, steps=10, lr_decay_steps=4)
    assert [learning_rate(run, step) for step in range(10)] == pytest.approx([1e-3] * 7 + [7.5e-4, 5e-4, 2.5e-4])
    constant = TrainOptions(model="m", data="d", output="o", learning_rate=1e-3, steps=10)
    assert {learning_rate(constant, step) for step in range(10)} == {1e-3}


def test_changed_cells_are_where_the_edit_moves_the_latent():
    original = torch.zeros(2, 4, 3, 3)
    edited = original.clone()
    edited[0, 2, 1, 1] = 0.5  # one channel of one cell changed
    edited[1, 0, 0, 0] = CHANGED_CELL / 2  # too little to count
    mask = changed_cells(edited, original)
    assert mask.shape == (2, 1, 3, 3) and mask.sum() == 1 and mask[0, 0, 1, 1] == 1


@pytest.mark.slow
def test_the_changed_region_weight_counts_only_where_the_edit_changed_the_picture(small_sd, shape_pairs):
    encoders = FrozenEncoders(load_model(small_sd), cache=True)
    empty = encode_text(encoders.model, [""])
    pairs = read_pairs(shape_pairs)
    edited = [load_pair(pair) for pair in pairs]
    batch = Batch(torch.stack([image_to_tensor(o) for o, _ in edited]),
                  torch.stack([image_to_tensor(e) for _, e in edited]), [pair.instruction for pair in pairs])
    unchanged = Batch(batch.original, batch.original, batch.instructions)
    def loss(b: Batch, weight: float) -> float:
        return ip2p_loss(encoders, b, empty, 0.05, torch.Generator().manual_seed(0), weight).item()

    with torch.no_grad():
        assert loss(unchanged, 4.0) == pytest.approx(loss(unchanged, 1.0), rel=1e-6)  # nothing changed: a plain mean
        assert loss(batch, 4.0) > loss(batch, 1.0) * 1.2


def test_changed_region_weight_on_the_command_line(capsys):
    required = ["--model", "m", "--data", "d", "--output", "o"]
    assert parse_args(required).changed_region_weight == 1.0
    assert parse_args(required + ["--changed-region-weight", "4"]).changed_region_weight == 4.0
    with pytest.raises(SystemExit):
        parse_args(required + ["--changed-region-weight", "0.5"])
    assert "--changed-region-weight must be 1 or more" in capsys.readouterr().err
