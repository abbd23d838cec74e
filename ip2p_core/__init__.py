"""Host-free InstructPix2Pix logic, in three parts by concern:

- `inference`: the maths of an edit (dual guidance, scale schedules, framing, masks, colour);
- `formats`: model files (checkpoint inspection, diffusers folders, LDM/diffusers key maps,
  conv_in widening, merges, EMA weights, compact weights, latent conventions);
- `training`: the training recipe and its data (`python -m ip2p_core.training.train`); nothing
  ComfyUI loads imports it.

`errors` (the message type users see) and `demo_model` (the shipped default model) sit on top.
Nothing here imports ComfyUI, so every function can be unit-tested with torch alone and reused
by tools that run outside a host.
"""
