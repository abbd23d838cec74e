"""Benchmark-only timing probe, loaded into the benchmark's ComfyUI hosts beside the pack.

It times, inside the host process, the part of an edit that neither the client nor the
host's own messages can isolate: the denoising loop. It wraps two host functions that
every sampling path goes through, the pack's IP2P Sampler and ComfyUI's
SamplerCustomAdvanced alike:

* `comfy.samplers.KSAMPLER.sample`: the sampler's loop over the sigmas (noise scaling,
  every step, the final inverse scaling), after the conditionings are prepared;
* `comfy.model_base.BaseModel.apply_model`: one UNet call, with its batch size;
* the host's `PromptExecutor.execute`: one whole prompt, every node of the edit.

Each finished loop appends one JSON line to the file named by `$IP2P_BENCH_TIMINGS`:
`{"loop_seconds", "steps", "model_calls": [[batch, seconds], ...], "page_faults"}`, the last
being the process's minor page faults during the loop (memory the kernel had to map in), and
one line `{"prompt_seconds"}` per executed prompt. Without that
variable the probe does nothing. It adds no nodes.
"""
import functools
import json
import os
import resource
import threading
import time

import comfy.model_base
import comfy.samplers

try:  # the packaged 2024 host
    from comfy.cmd import execution
except ImportError:  # upstream: a top-level module of the checkout
    import execution

NODE_CLASS_MAPPINGS = {}
_TIMINGS = os.environ.get("IP2P_BENCH_TIMINGS")
_state = threading.local()


def _timed_loop(sample):
    @functools.wraps(sample)
    def wrapper(self, model_wrap, sigmas, *args, **kwargs):
        _state.calls = []
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        started = time.perf_counter()
        try:
            return sample(self, model_wrap, sigmas, *args, **kwargs)
        finally:
            record = {"loop_seconds": time.perf_counter() - started, "steps": int(len(sigmas)) - 1,
                      "model_calls": _state.calls,
                      "page_faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults}
            _state.calls = None
            _record(record)
    return wrapper


def _timed_prompt(execute):
    @functools.wraps(execute)
    def wrapper(self, *args, **kwargs):
        started = time.perf_counter()
        try:
            return execute(self, *args, **kwargs)
        finally:
            _record({"prompt_seconds": time.perf_counter() - started})
    return wrapper


def _record(record: dict) -> None:
    with open(_TIMINGS, "a") as handle:
        handle.write(json.dumps(record) + "\n")


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
    execution.PromptExecutor.execute = _timed_prompt(execution.PromptExecutor.execute)
