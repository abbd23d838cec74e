"""Training IP2P models (`python -m training.train`) and the demo model's recipe
(`python -m training.demo_recipe`), with the drawn scenes and the scoring of edits.

Needs diffusers and transformers. It sits beside the pack, not in it: ComfyUI imports `nodes/`
and `ip2p_core/`, and neither imports this package (tests/test_pack_imports.py)."""
