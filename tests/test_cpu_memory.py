"""The CPU path's malloc settings: large tensors freed and allocated again stop faulting pages in."""
from __future__ import annotations

import platform
import subprocess
import sys

import pytest

from vidsr.engine.cpu_memory import keep_freed_memory

# A network's activations on the CPU: 64 MB tensors allocated, written and freed, batch after
# batch; counted before and after the setting, in a fresh process (the setting is process-wide).
_PROBE = """
import resource, torch
from vidsr.engine.cpu_memory import keep_freed_memory

def batch():
    x = torch.empty(16 * 2**20, dtype=torch.float32)  # 64 MB
    x.fill_(1.0)
    y = x * 2                                         # and a second one, as a layer's output
    return float(y[-1])

def faults():
    for _ in range(3):  # let the heap settle
        batch()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(6):
        batch()
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

default = faults()
assert keep_freed_memory()
print(default, faults())
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="hardware: a platform whose C library is glibc (Linux)")
def test_large_tensors_reuse_freed_memory() -> None:
    out = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True)
    default, kept = map(int, out.stdout.split())
    pages = 6 * 2 * 64 * 2**20 // 4096        # every page of every tensor, if each is a fresh mapping
    assert default > 0.5 * pages              # glibc maps and unmaps blocks this large every time
    assert kept < 0.2 * default               # ... and with the setting reuses them


def test_settings_are_accepted_and_repeatable() -> None:
    expected = platform.libc_ver()[0] == "glibc"
    assert keep_freed_memory() is expected
    assert keep_freed_memory(arenas=4) is expected


def test_the_cli_asks_for_it_on_cpu_runs_only(tiny_clip, tmp_path, monkeypatch) -> None:
    """`vidsr upscale` owns its process and sets it for a CPU run; importing vidsr does not."""
    import vidsr.engine.cpu_memory as cpu_memory
    from vidsr.cli.main import main

    calls = []
    monkeypatch.setattr(cpu_memory, "keep_freed_memory", lambda *a, **k: calls.append(a) or True)
    with pytest.raises(SystemExit) as exit_:
        main(["upscale", str(tiny_clip), "-o", str(tmp_path / "up.mp4"), "--device", "cpu", "--frames", "2", "-q"])
    assert exit_.value.code == 0 and calls == [()]
