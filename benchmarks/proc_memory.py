"""Resident memory of a Linux process from /proc: current (VmRSS) and peak (VmHWM).

Writing "5" to /proc/<pid>/clear_refs resets the peak to the current resident size, so the
peak of one edit can be read in a process that has loaded its model long before.
"""
import re


def memory_mb(pid: int | str = "self") -> dict:
    status = open(f"/proc/{pid}/status").read()
    values = {}
    for key, name in (("VmRSS", "rss"), ("VmHWM", "hwm")):
        match = re.search(rf"^{key}:\s+(\d+) kB", status, re.MULTILINE)
        values[name] = int(match.group(1)) / 1024 if match else float("nan")
    return values


def reset_peak(pid: int | str = "self") -> None:
    with open(f"/proc/{pid}/clear_refs", "w") as handle:
        handle.write("5")


def available_mb() -> float:
    """The machine's MemAvailable: what ComfyUI on the CPU takes as free memory."""
    for line in open("/proc/meminfo"):
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024
    return float("nan")
