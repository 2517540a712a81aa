"""Convert named models to .safetensors, e.g. to carry weights to a machine without the package.

    python scripts/export_weights.py animevideov3 x4plus --out .weights

writes .weights/animevideov3.safetensors and .weights/x4plus.safetensors, which
``vidsr.models.load_model(path)`` (and ``--model PATH``) load with their architecture detected.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

try:
    import vidsr  # noqa: F401
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vidsr.errors import VidsrError
from vidsr.models import list_models, load_model, save_safetensors


def export(names: list[str], out_dir: Path) -> list[Path]:
    """Write one ``<name>.safetensors`` per named model into ``out_dir``; return the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in names:
        model = load_model(name)
        paths.append(save_safetensors(model.module, out_dir / f"{model.name}.safetensors"))
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="named models to export (default: all)")
    parser.add_argument("--out", type=Path, default=Path(".weights"), help="output folder (default: .weights)")
    args = parser.parse_args(argv)
    try:
        names = args.names or [info.name for info in list_models()]
        for path in export(names, args.out):
            print(path)
    except VidsrError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
