"""Degradation configs: shipped YAML files, Real-ESRGAN's numbers, strict loading, immutability."""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import yaml

from vidsr.degrade import config_path, load_config
from vidsr.degrade.degradation_config import CONFIG_DIR, DegradationConfig
from vidsr.errors import InputError, InputNotFoundError, OptionError
from vidsr.yaml_config import to_plain


def test_shipped_configs_load() -> None:
    names = sorted(p.stem for p in CONFIG_DIR.glob("*.yml"))
    assert {"realesrgan_video", "anime_video"} <= set(names)
    for name in names:
        assert isinstance(load_config(name), DegradationConfig)
        assert isinstance(load_config(CONFIG_DIR / f"{name}.yml"), DegradationConfig)


def test_general_config_has_real_esrgan_published_defaults() -> None:
    c = load_config("realesrgan_video")
    f, s, fin = c.first_order, c.second_order, c.final
    assert c.sharpen_input
    assert dict(f.blur.kernel_probs) == {"iso": 0.45, "aniso": 0.25, "generalized_iso": 0.12,
                                         "generalized_aniso": 0.03, "plateau_iso": 0.12, "plateau_aniso": 0.03}
    assert f.blur.sinc_prob == 0.1 and f.blur.sizes == (7, 21)
    assert f.blur.sigma == (0.2, 3.0) and f.blur.beta_gaussian == (0.5, 4.0) and f.blur.beta_plateau == (1.0, 2.0)
    assert f.blur.sinc_omega_small[0] == pytest.approx(1 / 3) and f.blur.sinc_omega_large == (0.2, 1.0)
    assert dict(f.resize.probs) == {"up": 0.2, "down": 0.7, "keep": 0.1} and f.resize.range == (0.15, 1.5)
    assert set(f.resize.modes) == {"area", "bilinear", "bicubic"}
    assert f.noise.gaussian_prob == 0.5 and f.noise.gaussian_sigma == (1.0, 30.0)
    assert f.noise.poisson_scale == (0.05, 3.0) and f.noise.gray_prob == 0.4
    assert f.jpeg_quality == (30, 95)
    assert s.prob == 1.0 and s.blur.prob == 0.8 and s.blur.sigma == (0.2, 1.5)
    assert dict(s.blur.kernel_probs) == dict(f.blur.kernel_probs)
    assert dict(s.resize.probs) == {"up": 0.3, "down": 0.4, "keep": 0.3} and s.resize.range == (0.3, 1.2)
    assert s.noise.gaussian_sigma == (1.0, 25.0) and s.noise.poisson_scale == (0.05, 2.5)
    assert s.jpeg_quality is None
    assert fin.resize_first_prob == 0.5 and fin.sinc_prob == 0.8 and fin.jpeg_quality == (30, 95)
    assert fin.sinc_omega[0] == pytest.approx(1 / 3) and fin.sinc_omega[1] == 1.0
    assert 0 < c.codec.prob <= 1 and c.codec.place in ("final", "end")


def write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "c.yml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


@pytest.fixture()
def plain() -> dict:
    return to_plain(load_config("realesrgan_video"))


def test_round_trip_through_plain_data(tmp_path: Path, plain: dict) -> None:
    assert load_config(write(tmp_path, plain)) == load_config("realesrgan_video")


def test_unknown_keys_are_rejected_with_their_path(tmp_path: Path, plain: dict) -> None:
    plain["first_order"]["blur"]["sigma_typo"] = [1, 2]
    with pytest.raises(OptionError, match=r"first_order\.blur\.sigma_typo"):
        load_config(write(tmp_path, plain))


def test_missing_keys_are_rejected(tmp_path: Path, plain: dict) -> None:
    del plain["codec"]["gop"]
    with pytest.raises(OptionError, match=r"codec\.gop"):
        load_config(write(tmp_path, plain))


@pytest.mark.parametrize("path, value, match", [
    (("first_order", "blur", "kernel_probs", "iso"), 0.5, "sum to 1"),
    (("first_order", "resize", "modes"), ["area", "lanczos"], "lanczos"),
    (("codec", "place"), "middle", "final"),
    (("final", "sinc_sizes"), [8, 21], "odd"),
    (("second_order", "blur", "prob"), 1.5, "probability"),
    (("first_order", "jpeg_quality"), [95, 30], "low <= high"),
    (("codec", "codec_probs"), {"libx264": 0.5, "h266": 0.5}, "h266"),
    (("sharpen_input",), "yes", "true or false"),
    (("codec", "frames"), 2.5, "integer"),
    (("draw",), "per_clip", "per_batch"),
])
def test_invalid_values_are_rejected(tmp_path: Path, plain: dict, path: tuple, value: object, match: str) -> None:
    node = plain
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(OptionError, match=match):
        load_config(write(tmp_path, plain))


def test_config_is_frozen_all_the_way_down() -> None:
    c = load_config("anime_video")
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.codec.prob = 0.0  # type: ignore[misc]
    with pytest.raises(TypeError):
        c.first_order.blur.kernel_probs["iso"] = 1.0  # type: ignore[index]
    assert math.isclose(sum(c.codec.codec_probs.values()), 1.0)


def test_unknown_names_and_bad_files_are_user_errors(tmp_path: Path) -> None:
    with pytest.raises(InputNotFoundError, match="realesrgan_video"):
        config_path("no_such_config")
    with pytest.raises(InputNotFoundError):
        load_config(tmp_path / "missing.yml")
    bad = tmp_path / "bad.yml"
    bad.write_text("- just\n- a list\n", encoding="utf-8")
    with pytest.raises(InputError):
        load_config(bad)


def test_shipped_configs_draw_per_batch_and_older_files_per_sample(tmp_path: Path, plain: dict) -> None:
    assert {load_config(name).draw for name in ("realesrgan_video", "anime_video")} == {"per_batch"}
    # A file written before the key existed keeps meaning what it meant.
    del plain["draw"]
    assert load_config(write(tmp_path, plain)).draw == "per_sample"
