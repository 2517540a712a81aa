"""`vidsr bench` runs on the CPU and reports every phase."""
from __future__ import annotations

import json
from pathlib import Path

from conftest import REPO, run_cli
from tiny_model import tiny_model_file


def test_bench_on_cpu_prints_table_and_json(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    r = run_cli("bench", "--device", "cpu", "--size", "64x36", "--frames", "6", "--reference-frames", "3",
                "--source", str(REPO / "samples" / "earth_3s.mp4"), "--json", str(out), "--no-paths")
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


def test_bench_paths_rows_on_cpu(tmp_path: Path) -> None:
    """Each way a run can go, timed with its bound: defaults, --no-compile with one encoder, two encoders,
    a larger input and RRDB x4plus; and the issue's comparisons, computed from rows of the same run."""
    out = tmp_path / "bench.json"
    # The tiny network keeps 100 frames per run cheap; RRDB is the real x4plus, on 2 tiny frames.
    r = run_cli("bench", "--device", "cpu", "-m", str(tiny_model_file(tmp_path)), "--size", "64x36",
                "--frames", "100", "--reference-frames", "2",
                "--batch", "4", "--large-size", "96x54", "--large-frames", "4", "--rrdb-frames", "2",
                "--rrdb-size", "32x18", "--path-batch", "2",
                "--source", str(REPO / "samples" / "earth_3s.mp4"), "--json", str(out))
    assert r.returncode == 0, r.stderr
    report = json.loads(out.read_text())
    paths = {p["path"]: p for p in report["paths"]["paths"]}
    assert set(paths) == {"defaults, first run", "--no-compile --encoders 1", "defaults", "--encoders 2",
                          "96x54 --no-compile", "96x54 defaults", "x4plus 32x18 --no-compile"}
    for p in paths.values():
        assert p["fps"] > 0 and p["bound_fps"] > 0 and p["vs_bound"] > 0, p
        assert p["bound"] in ("model", "encode")
    assert not paths["defaults"]["compiled"]             # CPU: eager unless asked
    assert paths["--encoders 2"]["encoders"] == 2        # 100 frames, a keyframe every 2 s: two segments
    assert paths["--no-compile --encoders 1"]["encoders"] == 1
    checks = report["paths"]["checks"]
    for name in ("defaults_vs_no_compile_one_encoder", "defaults_vs_bound", "encode_inside_vs_alone",
                 "large_defaults_vs_eager"):
        assert checks[name] > 0, name
        assert name in r.stdout
    assert {"path", "path-model", "path-enc"} <= {row["phase"] for row in report["rows"]}
