"""Training IP2P models (`python -m ip2p_core.training.train`) and the demo model's recipe.

Needs diffusers and transformers; the nodes never import it, so ComfyUI never loads it."""
