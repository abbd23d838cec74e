"""Host-free InstructPix2Pix logic that the nodes run, in two parts by concern:

- `inference`: the maths of an edit (dual guidance, scale schedules, framing, masks, colour);
- `formats`: model files (checkpoint inspection, diffusers folders, diffusers-to-LDM key maps,
  conv_in widening, merges, EMA weights, the compact weights the demo model ships in, latent
  conventions).

`errors` (the message type users see), `demo_model` (the shipped default model) and
`output_names` sit on top. Nothing here imports ComfyUI, so every function can be unit-tested
with torch alone; nothing here is only for training, tools or tests (those live in the
top-level `training/`, `tools/` and `harness/`), so a user's ComfyUI loads only what the nodes
run (tests/test_pack_imports.py checks both).
"""
