"""Benchmark-only timing probe, loaded into the benchmark's ComfyUI hosts beside the pack.

It times, inside the host process, the part of an edit that neither the client nor the
host's own messages can isolate: the denoising loop. It wraps two host functions that
every sampling path goes through, the pack's IP2P Sampler and ComfyUI's
SamplerCustomAdvanced alike:

* `comfy.samplers.KSAMPLER.sample`: the sampler's loop over the sigmas (noise scaling,
  every step, the final inverse scaling), after the conditionings are prepared;
* `comfy.model_base.BaseModel.apply_model`: one UNet call, with its batch size.

Each finished loop appends one JSON line to the file named by `$IP2P_BENCH_TIMINGS`:
`{"loop_seconds", "steps", "model_calls": [[batch, seconds], ...]}`. Without that
variable the probe does nothing. It adds no nodes.
"""
import functools
import json
import os
import threading
import time

import comfy.model_base
import comfy.samplers

NODE_CLASS_MAPPINGS = {}
_TIMINGS = os.environ.get("IP2P_BENCH_TIMINGS")
_state = threading.local()


def _timed_loop(sample):
    @functools.wraps(sample)
    def wrapper(self, model_wrap, sigmas, *args, **kwargs):
        _state.calls = []
        started = time.perf_counter()
        try:
            return sample(self, model_wrap, sigmas, *args, **kwargs)
        finally:
            record = {"loop_seconds": time.perf_counter() - started, "steps": int(len(sigmas)) - 1,
                      "model_calls": _state.calls}
            _state.calls = None
            with open(_TIMINGS, "a") as handle:
                handle.write(json.dumps(record) + "\n")
    return wrapper


def _timed_call(apply_model):
    @functools.wraps(apply_model)
    def wrapper(self, x, *args, **kwargs):
        started = time.perf_counter()
        out = apply_model(self, x, *args, **kwargs)
        calls = getattr(_state, "calls", None)
        if calls is not None:
            calls.append([int(x.shape[0]), time.perf_counter() - started])
        return out
    return wrapper


if _TIMINGS:
    comfy.samplers.KSAMPLER.sample = _timed_loop(comfy.samplers.KSAMPLER.sample)
    comfy.model_base.BaseModel.apply_model = _timed_call(comfy.model_base.BaseModel.apply_model)
