"""The reference side of the UltraEdit benchmark, in a process of its own (as the ComfyUI host is).

Protocol as benchmarks/diffusers_worker.py (its `serve`): JSON lines. The worker loads the folder's transformer,
VAE, scheduler and both CLIP text encoders (transformers), answers `{"ready": ...}`, then answers
one line per request line. An edit request runs, timed in this process:

* `whole_seconds`: opening the image to the saved PNG: both texts through CLIP-L and CLIP-G (the
  penultimate layer, as ComfyUI's SD3 text encoder reads them), the image and the all-white mask
  through the VAE, the loop of `harness/ultraedit_reference.py` (the authors' pipeline), the
  decode and the PNG write, as the host graph does from its text encoders to SaveImage;
* `loop_seconds`: the denoising loop alone (`steps` transformer calls of batch 3 and scheduler steps);
* `peak_rss_mb`: the process's peak resident set during the edit (VmHWM reset before it).
"""
import sys
import time
from pathlib import Path

import numpy as np
import torch

from harness.diffusers_reference import comfy_noise
from harness.ultraedit_reference import TextEmbeddings, denoise, load_parts

from .diffusers_worker import serve
from .proc_memory import memory_mb, reset_peak


def load(folder: Path):
    from transformers import CLIPTextModelWithProjection, CLIPTokenizer

    transformer, vae, scheduler = load_parts(folder)
    encoders = [(CLIPTokenizer.from_pretrained(folder / tokenizer),
                 CLIPTextModelWithProjection.from_pretrained(folder / part, torch_dtype=torch.float32).eval())
                for tokenizer, part in (("tokenizer", "text_encoder"), ("tokenizer_2", "text_encoder_2"))]
    return transformer, vae, scheduler, encoders


def encode_text(encoders, text: str) -> tuple[torch.Tensor, torch.Tensor]:
    hidden, pooled = [], []
    for tokenizer, encoder in encoders:
        ids = tokenizer([text], padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
        out = encoder(ids, output_hidden_states=True)
        hidden.append(out.hidden_states[-2])
        pooled.append(out.text_embeds)
    context = torch.cat(hidden, dim=-1)
    return torch.nn.functional.pad(context, (0, 4096 - context.shape[-1])), torch.cat(pooled, dim=-1)


@torch.no_grad()
def edit(parts, request: dict) -> dict:
    from PIL import Image

    transformer, vae, scheduler, encoders = parts
    reset_peak()
    started = time.perf_counter()
    picture = Image.open(request["image"]).convert("RGB")
    image = torch.from_numpy(np.asarray(picture, dtype=np.float32) / 255.0).permute(2, 0, 1)[None] * 2 - 1
    text = TextEmbeddings(*encode_text(encoders, request["prompt"]), *encode_text(encoders, ""))
    noise = comfy_noise((1, 16, image.shape[-2] // 8, image.shape[-1] // 8), request["seed"])
    loop = {}
    latent = denoise(transformer, vae, scheduler, image, torch.ones_like(image), text, noise, request["steps"],
                     request["text_cfg"], request["image_cfg"], loop)
    decoded = vae.decode(latent).sample  # the authors decode latents / scaling_factor: what denoise returns
    array = ((decoded[0].permute(1, 2, 0).clamp(-1, 1) + 1) * 127.5).round().byte().numpy()
    out = Path(request["out_dir"]) / f"reference_{request['tag']}.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(out, compress_level=4)  # SaveImage's level
    return {"whole_seconds": time.perf_counter() - started, "loop_seconds": loop["seconds"],
            "steps": request["steps"], "peak_rss_mb": memory_mb()["hwm"], "image": str(out)}


def main() -> None:
    parts = load(Path(sys.argv[1]))
    serve(lambda request: edit(parts, request), {"threads": torch.get_num_threads(), "memory_mb": memory_mb()})


if __name__ == "__main__":
    main()
