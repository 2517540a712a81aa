"""`vidsr models`: what can be passed to --model."""
from __future__ import annotations

import typer

from vidsr.models import list_models


def models() -> None:
    """List the named models: architecture, native scale, parameters, where the weights come from."""
    rows = [("NAME", "ALIASES", "ARCHITECTURE", "SCALE", "PARAMS", "SOURCE")]
    for m in list_models():
        rows.append((m.name, ", ".join(m.aliases) or "-", m.architecture, f"x{m.scale}", f"{m.num_params:,}",
                     str(m.source)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for r in rows:
        typer.echo("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1])
    typer.echo("\n--model also takes a path: a Real-ESRGAN .pth (params_ema/params), a .safetensors, or an ncnn .param.")
