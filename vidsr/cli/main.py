"""The `vidsr` command: one typer app, one module per command.

Each command module imports only typer at the top and its machinery (torch, PyAV, the
engine) inside the command, so `vidsr --help` and a mistyped option answer at once.
"""
from __future__ import annotations

import logging
import os
import sys

import typer

from vidsr.cli.bench_cmd import bench
from vidsr.cli.compare_cmd import compare
from vidsr.cli.degrade_cmd import degrade
from vidsr.cli.error_report import debug_mode, exit_at_once, reports_errors
from vidsr.cli.models_cmd import app as models_app
from vidsr.cli.train_cmd import train
from vidsr.cli.upscale_cmd import upscale

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: loading rich for it would take longer than the rest of `vidsr --help`
    help="Upscale real-world video and images with Real-ESRGAN-family networks. "
         "Add --debug anywhere for full tracebacks and debug logging.",
)
app.command("upscale")(reports_errors(upscale))
app.add_typer(models_app, name="models")
app.command("compare")(reports_errors(compare))
app.command("bench")(reports_errors(bench))
app.command("degrade")(reports_errors(degrade))
app.command("train")(reports_errors(train))


def main(argv: list[str] | None = None) -> None:
    """Entry point of the console script; exits with the command's status."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("VIDSR_DEBUG") == "1"
    args = [a for a in args if a != "--debug"]
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING,
                        format="vidsr: %(levelname)s: %(message)s")
    debug_mode.set(debug)
    exit_at_once.set(argv is None)  # the `vidsr` command itself, not a call from Python
    app(args=args, prog_name="vidsr")


if __name__ == "__main__":
    main()
