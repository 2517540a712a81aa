"""`vidsr upscale DIR | FILE... -o OUTDIR`: a queue that skips finished outputs and survives bad files."""
from __future__ import annotations

import shutil
from pathlib import Path

import av
import numpy as np
import pytest
from conftest import EARTH, ffmpeg
from PIL import Image

from vidsr.cli.main import main

FAST = ("--device", "cpu", "-s", "2", "--preset", "ultrafast")


def vidsr(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """Run the command in this process; (exit status, stderr with progress-bar redraws removed)."""
    with pytest.raises(SystemExit) as exit_:
        main(list(args))
    err = capsys.readouterr().err
    lines = [line.rsplit("\r", 1)[-1] for line in err.splitlines()]
    return int(exit_.value.code or 0), "\n".join(lines)


def frames_and_size(path: Path) -> tuple[int, int, int]:
    with av.open(str(path)) as c:
        n = sum(1 for _ in c.decode(video=0))
        ctx = c.streams.video[0].codec_context
        return n, ctx.width, ctx.height


def table_rows(err: str) -> dict[str, list[str]]:
    """The summary table, by file name: [status, frames, seconds, fps, note...]."""
    rows = {}
    for line in err.splitlines():
        cells = line.split()
        if len(cells) >= 5 and cells[1] in ("done", "skipped", "failed"):
            rows[Path(cells[0]).name] = cells[1:]
    return rows


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory, media: Path, ffmpeg_exe: str) -> dict[str, Path]:
    """Tiny real clips (a few frames) and a real image crop, made once."""
    d = tmp_path_factory.mktemp("queue_media")
    earth, bikes, anime = d / "earth.mp4", d / "bikes.mkv", d / "sylvie.png"
    ffmpeg(ffmpeg_exe, "-i", str(EARTH), "-frames:v", "4", "-vf", "scale=48:28", "-c:v", "libx264",
           "-preset", "ultrafast", "-c:a", "copy", "-t", "0.2", str(earth))
    ffmpeg(ffmpeg_exe, "-i", str(media / "videos" / "bikes_640x272_3s.mp4"), "-frames:v", "3",
           "-vf", "scale=48:20", "-c:v", "libx264", "-preset", "ultrafast", str(bikes))
    avi = d / "earth.avi"
    ffmpeg(ffmpeg_exe, "-i", str(earth), "-c:v", "mpeg4", "-an", str(avi))
    with Image.open(media / "images" / "anime" / "sylvie_blue_smile.png") as im:
        im.crop((150, 60, 190, 100)).save(anime)
    return {"earth": earth, "bikes": bikes, "avi": avi, "image": anime}


def test_folder_two_videos_an_image_and_a_broken_file(clips: dict[str, Path], tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    src, out = tmp_path / "in", tmp_path / "out"
    (src / "sub").mkdir(parents=True)
    shutil.copy(clips["earth"], src / "earth.mp4")
    shutil.copy(clips["bikes"], src / "sub" / "bikes.mkv")
    shutil.copy(clips["image"], src / "sylvie.png")
    (src / "sub" / "broken.mp4").write_bytes(clips["earth"].read_bytes()[:1500])  # header cut short
    (src / "notes.txt").write_text("not a video\n")
    (src / ".hidden.mp4").write_bytes(b"never looked at")

    code, err = vidsr(capsys, "upscale", str(src), "-o", str(out), "--recursive", *FAST)
    assert code == 1
    failed = [line for line in err.splitlines() if line.startswith("vidsr: failed:")]
    assert len(failed) == 1 and "broken.mp4" in failed[0] and "cannot read" in failed[0], err
    assert "Traceback" not in err and "internal error" not in err
    rows = table_rows(err)
    assert {k: v[0] for k, v in rows.items()} == {
        "earth.mp4": "done", "bikes.mkv": "done", "sylvie.png": "done", "broken.mp4": "failed",
        "notes.txt": "skipped"}
    assert rows["earth.mp4"][1] == "4" and rows["bikes.mkv"][1] == "3" and rows["sylvie.png"][1] == "1"
    assert "3 done, 1 skipped, 1 failed" in err

    # Three outputs, in the input's folder structure, and nothing else (no partial files).
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert written == ["earth.mp4", "sub/bikes.mkv", "sylvie.png"]
    assert frames_and_size(out / "earth.mp4") == (4, 96, 56)
    assert frames_and_size(out / "sub" / "bikes.mkv") == (3, 96, 40)
    with Image.open(out / "sylvie.png") as im:
        assert im.size == (80, 80) and im.mode == "RGBA"

    # The rerun skips the three (untouched) and reports the broken one again.
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    code, err = vidsr(capsys, "upscale", str(src), "-o", str(out), "--recursive", *FAST)
    assert code == 1
    rows = table_rows(err)
    assert {k: (v[0], v[-1]) for k, v in rows.items() if k != "notes.txt"} == {
        "earth.mp4": ("skipped", "exists"), "bikes.mkv": ("skipped", "exists"),
        "sylvie.png": ("skipped", "exists"), "broken.mp4": ("failed", rows["broken.mp4"][-1])}
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == stamps

    # Once the broken file is gone, the queue is complete: exit 0.
    (src / "sub" / "broken.mp4").unlink()
    code, err = vidsr(capsys, "upscale", str(src), "-o", str(out), "--recursive", *FAST, "--quiet")
    assert code == 0 and err == ""


def test_without_recursive_glob_and_output_inside_input(clips: dict[str, Path], tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    shutil.copy(clips["image"], src / "A.PNG")
    shutil.copy(clips["image"], src / "b.jpg")
    shutil.copy(clips["image"], src / "sub" / "c.png")
    out = src / "big"  # inside the input folder: never scanned as input
    for _ in range(2):
        code, err = vidsr(capsys, "upscale", str(src), "-o", str(out), "--glob", "*.png", *FAST)
        assert code == 0, err
    rows = table_rows(err)
    assert rows == {"A.PNG": ["skipped", "-", "-", "-", "output", "exists"]}  # b.jpg filtered, sub/ not entered
    assert sorted(p.name for p in out.iterdir()) == ["A.png"]  # suffixes lower-case, as single-file outputs
    code, err = vidsr(capsys, "upscale", str(src), "-o", str(out), "--glob", "*.png", "--recursive", *FAST)
    assert code == 0, err
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == ["A.png", "sub/c.png"]


def test_list_of_files(clips: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Files named one by one: beside each input by default, into a folder with -o; a missing one fails."""
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    shutil.copy(clips["image"], a)
    shutil.copy(clips["image"], b)
    code, err = vidsr(capsys, "upscale", str(a), str(b), str(tmp_path / "missing.mp4"), *FAST)
    assert code == 1
    assert (tmp_path / "a_x2.png").is_file() and (tmp_path / "b_x2.png").is_file()
    assert table_rows(err)["missing.mp4"][0] == "failed" and "not found" in err
    # One file into an existing folder keeps its name there.
    outdir = tmp_path / "outdir"
    outdir.mkdir()
    code, err = vidsr(capsys, "upscale", str(a), "-o", str(outdir), *FAST, "--quiet")
    assert code == 0, err
    assert [p.name for p in outdir.iterdir()] == ["a.png"]
    with Image.open(outdir / "a.png") as big, Image.open(tmp_path / "a_x2.png") as beside:
        assert np.array_equal(np.asarray(big), np.asarray(beside))


def test_container_change_does_not_overwrite_a_sibling(clips: dict[str, Path], tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """clip.avi becomes Matroska; beside a clip.mkv it is written as clip_avi.mkv, and clip.mkv keeps its name."""
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    shutil.copy(clips["avi"], src / "clip.avi")
    shutil.copy(clips["bikes"], src / "clip.mkv")
    code, err = vidsr(capsys, "upscale", str(src), "-o", str(out), *FAST, "--quiet")
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["clip.mkv", "clip_avi.mkv"]
    assert frames_and_size(out / "clip.mkv") == (3, 96, 40)      # from the bikes clip
    assert frames_and_size(out / "clip_avi.mkv") == (4, 96, 56)  # from the earth clip


def test_queue_with_segmented_workers(clips: dict[str, Path], tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    shutil.copy(clips["earth"], src / "earth.mp4")
    shutil.copy(clips["image"], src / "sylvie.png")
    code, err = vidsr(capsys, "upscale", str(src), "-o", str(out), *FAST, "--devices", "cpu",
                      "--segment-seconds", "0.05")
    assert code == 0, err
    assert {k: v[0] for k, v in table_rows(err).items()} == {"earth.mp4": "done", "sylvie.png": "done"}
    assert frames_and_size(out / "earth.mp4") == (4, 96, 56)
    assert sorted(p.name for p in out.iterdir()) == ["earth.mp4", "sylvie.png"]  # job folders removed


@pytest.mark.parametrize("case", ["folder-without-o", "o-is-the-input", "nothing-matches", "o-is-a-file"])
def test_queue_errors_are_one_line(case: str, clips: dict[str, Path], tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(clips["image"], src / "a.png")
    afile = tmp_path / "exists.mp4"
    afile.write_bytes(b"x")
    args = {
        "folder-without-o": (str(src),),
        "o-is-the-input": (str(src), "-o", str(src)),
        "nothing-matches": (str(src), "-o", str(tmp_path / "out"), "--glob", "*.mkv"),
        "o-is-a-file": (str(src / "a.png"), str(src / "a.png"), str(src), "-o", str(afile)),
    }[case]
    code, err = vidsr(capsys, "upscale", *args, *FAST)
    assert code == 1
    assert len(err.strip().splitlines()) == 1 and err.startswith("vidsr: error:"), err
    assert sorted(p.name for p in src.iterdir()) == ["a.png"] and not (tmp_path / "out").exists()
