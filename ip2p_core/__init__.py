"""Host-free InstructPix2Pix logic: guidance maths, latent conventions, checkpoint inspection.

Nothing here imports ComfyUI, so every function can be unit-tested with torch alone and
reused by scripts that run outside a host.
"""
