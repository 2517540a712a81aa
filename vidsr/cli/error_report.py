"""Turning exceptions into one line and an exit code, for every command alike."""
from __future__ import annotations

import contextvars
import functools
import logging
import os
import sys
from collections.abc import Callable
from typing import TypeVar

import typer

from vidsr.errors import VidsrError

EXIT_ERROR = 1
EXIT_INTERRUPTED = 130

# Set by main() from --debug; a context variable rather than a module global so that
# tests calling main() in one process do not leak the setting into each other.
debug_mode: contextvars.ContextVar[bool] = contextvars.ContextVar("vidsr_debug", default=False)
# Set by main() when it runs as the `vidsr` command (not called from Python): then Ctrl-C ends the
# process at once, once vidsr has cleaned up, instead of waiting seconds for torch's teardown.
exit_at_once: contextvars.ContextVar[bool] = contextvars.ContextVar("vidsr_exit_at_once", default=False)

F = TypeVar("F", bound=Callable[..., None])


def one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def reports_errors(command: F) -> F:
    """Wrap a command so user errors print `vidsr: error: ...` and exit 1, without a traceback."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):  # type: ignore[no-untyped-def]
        try:
            return command(*args, **kwargs)
        except typer.Exit:
            raise
        except KeyboardInterrupt:
            # Every `finally` on the way here has run: the encoder is stopped, temporary files
            # are gone and the pipeline threads are joined.
            print("vidsr: interrupted", file=sys.stderr)
            if exit_at_once.get():
                sys.stdout.flush()
                sys.stderr.flush()
                logging.shutdown()
                os._exit(EXIT_INTERRUPTED)
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except VidsrError as exc:
            if debug_mode.get():
                raise
            print(f"vidsr: error: {one_line(exc)}", file=sys.stderr)
            raise typer.Exit(EXIT_ERROR) from None
        except Exception as exc:  # a bug rather than a user error: still one line unless --debug
            if debug_mode.get():
                raise
            print(f"vidsr: internal error: {type(exc).__name__}: {one_line(exc)} (run with --debug for details)",
                  file=sys.stderr)
            raise typer.Exit(EXIT_ERROR) from None

    return wrapper  # type: ignore[return-value]
