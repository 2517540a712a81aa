"""What the training check scripts share: scores rounded for a report, and the report printed and saved."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def rounded_scores(scores: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """{"psnr_y": {name: dB}, "ssim_y": {name: value}} from {name: {"psnr_y", "ssim_y"}}."""
    return {"psnr_y": {k: round(v["psnr_y"], 3) for k, v in scores.items()},
            "ssim_y": {k: round(v["ssim_y"], 4) for k, v in scores.items()}}


def emit(report: dict[str, Any], json_path: Path | None) -> None:
    """Print the report as JSON, and write it to `json_path` too when one is given."""
    text = json.dumps(report, indent=2)
    print(text)
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(text + "\n", encoding="utf-8")
