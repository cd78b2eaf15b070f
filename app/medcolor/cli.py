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
data_app = typer.Typer(help="Inspect, check and cache datasets described by data specs.", no_args_is_help=True)
app.add_typer(data_app, name="data")

SPEC_ARG = typer.Argument(..., help="data spec name (chexpert, chestxray14, mura, folder, csv, nih-sample)")
OVERRIDES_ARG = typer.Argument(None, help="key=value overrides of data fields, e.g. subset.fraction=0.1")
ROOT_OPT = typer.Option(None, "--root", help="dataset folder (data.root)")


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


@data_app.command("summary")
def data_summary(spec: str = SPEC_ARG, overrides: Optional[List[str]] = OVERRIDES_ARG, root: Optional[str] = ROOT_OPT,
                 csv: Optional[str] = typer.Option(None, "--csv", help="label table (data.csv)"),
                 split: str = typer.Option("train", help="train, valid or test"),
                 as_json: bool = typer.Option(False, "--json", help="print JSON")):
    """Images and per-label positives after label policy and subset (reads only the label table)."""
    from .data import load_data_config
    from .data.summary import format_summary, summarize

    s = summarize(load_data_config(spec, overrides or [], root=root, csv=csv), split=split)
    _print_json(s) if as_json else typer.echo(format_summary(s))


@data_app.command("check")
def data_check(spec: str = SPEC_ARG, overrides: Optional[List[str]] = OVERRIDES_ARG, root: Optional[str] = ROOT_OPT,
               as_json: bool = typer.Option(False, "--json", help="print JSON")):
    """Verify that every listed image exists and decodes; report missing/corrupt files with counts."""
    from .data import load_data_config
    from .data.summary import check

    s = check(load_data_config(spec, overrides or [], root=root))
    _print_json(s) if as_json else typer.echo(f"{s['n_images']:,} images: all present and decodable")


@data_app.command("cache")
def data_cache(spec: str = SPEC_ARG, overrides: Optional[List[str]] = OVERRIDES_ARG, root: Optional[str] = ROOT_OPT,
               size: int = typer.Option(320, "--size", help="shorter side of the cached copies"),
               as_json: bool = typer.Option(False, "--json", help="print JSON")):
    """Pre-resize images once; later runs at image_size <= SIZE read the cache automatically."""
    from .data import load_data_config
    from .data.summary import cache

    s = cache(load_data_config(spec, overrides or [], root=root), size)
    _print_json(s) if as_json else typer.echo(f"cached {s['n_images']:,} images ({s['written']:,} new) in {s['cache_dir']}")


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
