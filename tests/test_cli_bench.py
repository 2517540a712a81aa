"""`vidsr bench` runs on the CPU and reports every phase."""
from __future__ import annotations

import json
from pathlib import Path

from conftest import REPO, run_cli


def test_bench_on_cpu_prints_table_and_json(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    r = run_cli("bench", "--device", "cpu", "--size", "64x36", "--frames", "6", "--reference-frames", "3",
                "--source", str(REPO / "samples" / "earth_3s.mp4"), "--json", str(out))
    assert r.returncode == 0, r.stderr
    report = json.loads(out.read_text())
    phases = {row["phase"] for row in report["rows"]}
    assert phases == {"decode", "model", "model+post", "encode", "end-to-end", "reference"}
    for row in report["rows"]:
        assert row["frames"] > 0 and row["fps"] > 0, row
        assert row["user_s"] + row["sys_s"] > 0 and 0 <= row["sys_share"] < 1, row  # the CPU's share per phase
    assert report["summary"]["e2e_vs_reference"] > 0
    for phase in phases:
        assert phase in r.stdout
    assert "sys %" in r.stdout and "of min(model" in r.stdout and "reference loop =" in r.stdout
