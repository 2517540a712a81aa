"""A stage's training log (``<stage>/log.jsonl``) summed up: throughput, the wait for data, the GPU."""
from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

KEYS = ("it_s", "samples_s", "step_samples_s", "feed_samples_s", "feed_vs_step", "data_wait_frac", "gpu_util")


def summarize_train_log(path: Path) -> dict[str, Any]:
    """Means over the logged intervals after the first (which includes filling the shuffle pool),
    or over all of them when there is only one; a key without values is None."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return {"intervals": 0}
    rows = [r for r in map(json.loads, lines) if r.get("event") == "train"]
    steady = rows[1:] or rows
    out: dict[str, Any] = {"intervals": len(rows), "steady_intervals": len(steady)}
    for key in KEYS:
        values = [r[key] for r in steady if r.get(key) is not None]
        out[key] = round(statistics.fmean(values), 4) if values else None
    out["data_wait_s"] = round(sum(r.get("data_wait_s", 0.0) for r in rows), 2)
    return out
