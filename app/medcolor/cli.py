"""The `medcolor` command line: parses arguments and calls the library. No logic lives here.

Heavy libraries (torch, fastai, timm) are imported inside the commands so that `--help` stays fast.
"""
from __future__ import annotations

import json
import sys
from typing import List, Optional

import typer

app = typer.Typer(help="Colorize grayscale medical images into ImageNet networks: recipes, runs, reports.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
model_app = typer.Typer(help="Inspect models.", no_args_is_help=True)
app.add_typer(model_app, name="model")


def _print_json(obj) -> None:
    typer.echo(json.dumps(obj))


@model_app.command("summary")
def model_summary(
    backbone: str = typer.Option("resnet18", help="any timm model name"),
    colorizer: str = typer.Option("none", help="none|gray|deconv|pixelshuffle|resizeconv|coloru"),
    mode: int = typer.Option(1, help="transfer mode 1, 2 or 3"),
    n_out: int = typer.Option(5, "--n-out", help="number of outputs (labels)"),
    image_size: int = typer.Option(320, "--image-size", help="input side in pixels, for MACs"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
):
    """Trainable / total parameters per part, MACs and output shape."""
    from .config import ModelConfig
    from .summary import format_summary, summarize_colornet

    s = summarize_colornet(ModelConfig(backbone=backbone, colorizer=colorizer, mode=mode), n_out, image_size)
    _print_json(s) if as_json else typer.echo(format_summary(s))


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point: every failure becomes one `error: ...` line on stderr (a traceback only with --debug)."""
    from typer.exceptions import Abort, Exit, TyperException
    from .errors import MedcolorError

    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    args = [a for a in args if a != "--debug"]
    try:
        code = typer.main.get_command(app).main(args, prog_name="medcolor", standalone_mode=False)
        return code if isinstance(code, int) else 0
    except Exit as e:
        return e.exit_code
    except TyperException as e:  # usage errors (bad option, missing argument)
        if debug:
            raise
        typer.echo(f"error: {e.format_message()} (see `medcolor {' '.join(args[:2])} --help`)", err=True)
        return 2
    except MedcolorError as e:
        if debug:
            raise
        typer.echo(f"error: {e}", err=True)
        return e.exit_code
    except (KeyboardInterrupt, Abort):
        typer.echo("error: interrupted", err=True)
        return 130
    except Exception as e:  # an unexpected failure while running: one line unless --debug
        if debug:
            raise
        first = str(e).splitlines()[0] if str(e) else ""
        typer.echo(f"error: {type(e).__name__}: {first} (rerun with --debug for the traceback)", err=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
