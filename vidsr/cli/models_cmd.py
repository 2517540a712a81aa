"""`vidsr models`: what can be passed to --model, what a weights file holds, and exporting weights."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from vidsr.cli.error_report import reports_errors

if TYPE_CHECKING:
    from vidsr.models import ModelDescriptor

app = typer.Typer(help="The named models; `info` and `export` for any model name or weights file.",
                  no_args_is_help=False, rich_markup_mode=None)

_CHANNELS = {1: "gray", 3: "RGB", 4: "RGBA"}


def _list() -> None:
    from vidsr.models import list_models

    rows = [("NAME", "ALIASES", "ARCHITECTURE", "SCALE", "PARAMS", "SOURCE")]
    for m in list_models():
        rows.append((m.name, ", ".join(m.aliases) or "-", m.architecture, f"x{m.scale}", f"{m.num_params:,}",
                     str(m.source)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for r in rows:
        typer.echo("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1])
    typer.echo("\n--model also takes a weights file: .pth/.pt/.ckpt/.safetensors (Real-ESRGAN's compact and "
               "RRDB nets, and the ~40 architectures spandrel detects: SPAN, RealCUGAN, DAT, SwinIR, HAT, ...) "
               "or an ncnn .param. `vidsr models info FILE` says what one holds.")


@reports_errors
def _bare(ctx: typer.Context) -> None:
    """List the named models: architecture, native scale, parameters, where the weights come from."""
    if ctx.invoked_subcommand is None:
        _list()


app.callback(invoke_without_command=True)(_bare)


@app.command("list")
@reports_errors
def list_cmd() -> None:
    """List the named models (the same as plain `vidsr models`)."""
    _list()


def describe(model: ModelDescriptor) -> list[tuple[str, str]]:
    """The facts `vidsr models info` prints, as (label, value) rows."""
    if model.loader == "spandrel":
        import spandrel

        built = f"spandrel {spandrel.__version__}"
    else:
        built = "vidsr's own network"
    tags = f"; {', '.join(model.tags)}" if model.tags else ""
    unsafe = [p for p in ("fp16", "bf16") if p not in model.precisions]
    precisions = ", ".join(model.precisions) + (
        f" ({' and '.join(unsafe)} unsafe: runs in fp32 instead)" if unsafe else "")
    size = f"{model.size_multiple}"
    if model.min_size > model.size_multiple:
        size += f", at least {model.min_size} px"
    if model.square:
        size += ", square"
    size += " (frames are padded to fit, the result cropped)" if size != "1" else " (any size)"
    cin, cout = model.input_channels, model.output_channels
    return [
        ("name", model.name),
        ("source", model.source),
        ("architecture", f"{model.architecture} ({built}{tags})"),
        ("scale", f"x{model.scale}"),
        ("channels", f"{cin} in ({_CHANNELS.get(cin, '?')}), {cout} out ({_CHANNELS.get(cout, '?')})"),
        ("parameters", f"{model.num_params:,}"),
        ("precisions", precisions),
        ("size multiple", size),
    ]


@app.command("info")
@reports_errors
def info(model: str = typer.Argument(..., help="Model name (see `vidsr models`) or weights file.")) -> None:
    """Print what a model is: architecture, scale, channels, parameters, precisions, size multiple."""
    from vidsr.models import load_model

    rows = describe(load_model(model))
    width = max(len(label) for label, _ in rows) + 1
    for label, value in rows:
        typer.echo(f"{label + ':':<{width}} {value}")


@app.command("export")
@reports_errors
def export(
    model: str = typer.Argument(..., help="Model name (see `vidsr models`) or weights file (.param, .pth, ...)."),
    output: Path = typer.Option(..., "-o", "--output", help="File to write: .safetensors or .pth "
                                "(Real-ESRGAN's {'params_ema': ...})."),
    overwrite: bool = typer.Option(False, "--overwrite", "-y", help="Replace an existing file."),
) -> None:
    """Write a model's weights as .safetensors or .pth (checked by loading them back), e.g. for another machine."""
    from vidsr.models import export_model

    written = export_model(model, output, overwrite=overwrite)
    typer.echo(f"wrote {written.source} ({written.architecture}, x{written.scale}, "
               f"{written.num_params:,} parameters)")
