"""The one place that knows how the ComfyUI hosts we support differ.

Upstream ComfyUI (2025) and the packaged `comfyui` from PyPI (2024) share the sampling and
model-management APIs the pack uses, but differ in how progress bars are switched and in
whether the VAE encodes the posterior's mode or a sample.
"""
import contextlib

import comfy.utils


def progress_bar_disabled() -> bool:
    """Whether the host asked for no progress bar, as its own KSampler node checks it."""
    try:
        from comfy.execution_context import current_execution_context  # packaged 2024 host
    except ImportError:
        return not comfy.utils.PROGRESS_BAR_ENABLED
    return not current_execution_context().server.receive_all_progress_notifications


def is_ip2p_model(model) -> bool:
    """Whether the host built an IP2P model class, the ones that concatenate the image latent."""
    return hasattr(model.model, "process_ip2p_image_in")


def encode_mode(vae, pixels):
    """VAE-encodes to the posterior's mode, the latent IP2P models were trained with.

    Upstream's VAE already returns the mode; the 2024 host samples the posterior by default,
    which would make the conditioning image noisy and the same seed give different edits.
    """
    regularizer = getattr(vae.first_stage_model, "regularization", None)
    with _attribute(regularizer, "sample", False):
        return vae.encode(pixels)


@contextlib.contextmanager
def _attribute(obj, name, value):
    if obj is None or not hasattr(obj, name):
        yield
        return
    old = getattr(obj, name)
    setattr(obj, name, value)
    try:
        yield
    finally:
        setattr(obj, name, old)
