"""Model files, host-free: what a checkpoint holds, diffusers folders, key maps between the
LDM and diffusers layouts, conv_in widening, merges, EMA weights, compact shipped weights."""
