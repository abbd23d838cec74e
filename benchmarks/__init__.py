"""Measurements against ComfyUI's native nodes and diffusers (`python -m benchmarks.bench_edit`, ...)."""
