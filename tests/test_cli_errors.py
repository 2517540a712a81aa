"""Bad input gives one line naming the problem, a non-zero exit, and no output file."""
from __future__ import annotations

from pathlib import Path

import pytest
from conftest import run_cli


def _bad_inputs(tmp: Path, media: Path, clip: Path) -> dict[str, tuple[Path, str]]:
    empty = tmp / "empty.mp4"
    empty.write_bytes(b"")
    text = tmp / "notes.mp4"
    text.write_text("this is not a video\n" * 50)
    truncated = tmp / "truncated.mp4"
    data = clip.read_bytes()
    truncated.write_bytes(data[: min(len(data) // 3, 2000)])
    return {
        "missing": (tmp / "nope.mp4", "not found"),
        "empty": (empty, "empty"),
        "not-a-video": (text, "cannot read"),
        "truncated-header": (truncated, "cannot read"),
        "audio-only": (media / "audio" / "upgrade1.wav", "no video stream"),
    }


@pytest.mark.parametrize("case", ["missing", "empty", "not-a-video", "truncated-header", "audio-only"])
def test_bad_input_one_line_error(case: str, tmp_path: Path, media: Path, tiny_clip: Path) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    src, expected = _bad_inputs(inputs, media, tiny_clip)[case]
    outdir = tmp_path / "out"
    outdir.mkdir()
    r = run_cli("upscale", str(src), "-o", str(outdir / "result.mp4"), "--device", "cpu")
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("vidsr: error:") and expected in lines[0], lines[0]
    assert str(src.name) in lines[0]
    assert "Traceback" not in r.stderr
    assert list(outdir.iterdir()) == []


def test_debug_flag_shows_traceback(tmp_path: Path) -> None:
    r = run_cli("upscale", str(tmp_path / "nope.mp4"), "--debug")
    assert r.returncode != 0
    assert "Traceback" in r.stderr and "InputNotFoundError" in r.stderr


def test_encoder_failure_leaves_no_output(tiny_clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    r = run_cli("upscale", str(tiny_clip), "-o", str(out), "--device", "cpu", "--preset", "no-such-preset",
                "--quiet")
    assert r.returncode == 1
    assert len(r.stderr.strip().splitlines()) == 1 and "vidsr: error:" in r.stderr, r.stderr
    assert list(tmp_path.iterdir()) == []


def test_unknown_model_is_one_line(tiny_clip: Path, tmp_path: Path) -> None:
    r = run_cli("upscale", str(tiny_clip), "-o", str(tmp_path / "o.mp4"), "--model", "no-such-model")
    assert r.returncode == 1
    assert r.stderr.startswith("vidsr: error:") and "animevideov3" in r.stderr
    assert list(tmp_path.iterdir()) == []


def test_bad_option_values(tiny_clip: Path, tmp_path: Path) -> None:
    for args in (["-s", "0"], ["--batch", "0"], ["--device", "tpu"], ["--codec", "nope264"]):
        r = run_cli("upscale", str(tiny_clip), "-o", str(tmp_path / "o.mp4"), *args)
        assert r.returncode == 1, args
        assert r.stderr.startswith("vidsr: error:"), (args, r.stderr)
    assert list(tmp_path.iterdir()) == []
