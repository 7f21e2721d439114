"""``pairgan serve``: the REST API and the web editor (needs the ``web`` extra)."""

from __future__ import annotations

from typing import List, Optional

import typer

from pairgan.cli.common import fail, user_errors_reported

__all__ = ["serve"]


def serve(
    models: List[str] = typer.Argument(
        ..., help="Run or checkpoint folders, or exported files (.onnx, .pt); NAME=PATH names a model (default: the "
        "run folder's name)."),
    host: str = typer.Option("127.0.0.1", help="Interface to listen on (loopback by default; 0.0.0.0 = all)."),
    port: int = typer.Option(8000, help="TCP port."),
    device: str = typer.Option("auto", help="auto, cpu, cuda, mps (checkpoints; .onnx files run on the CPU)."),
    mode: Optional[str] = typer.Option(None, help="Inference mode of checkpoints (pix2pix: paper or eval)."),
    workers: int = typer.Option(1, help="Worker threads (decoding/encoding overlap; one inference at a time)."),
    queue: int = typer.Option(8, help="Requests admitted at once (running + waiting); more get 503."),
    timeout: float = typer.Option(60.0, help="Per-request time limit in seconds (504 when exceeded)."),
    max_upload_mb: float = typer.Option(16.0, help="Largest request body in MiB (413 beyond)."),
    max_pixels: int = typer.Option(4096 * 4096, help="Largest image, width x height, checked before decoding (413)."),
) -> None:
    """Serve models over HTTP: the web editor at /, POST /v1/translate, GET /v1/models, /healthz, /docs."""
    try:
        # Deferred: pairgan.serve needs fastapi (the optional `web` extra); the rest of the CLI does not.
        from pairgan.serve.app import create_app
        from pairgan.serve.limits import Limits
        from pairgan.serve.models import load_models
    except ImportError as exc:
        fail(f"serving needs the web extra: pip install 'pairgan[web]' ({exc})")
    try:
        import uvicorn  # deferred: optional `web` extra
    except ImportError:
        fail("serving needs uvicorn: pip install 'pairgan[web]'")
    with user_errors_reported(ValueError):
        loaded = load_models(models, device=device, mode=mode)
    limits = Limits(max_upload_bytes=int(max_upload_mb * 2**20), max_pixels=max_pixels, workers=workers,
                    queue_size=queue, timeout_s=timeout)
    if host not in ("127.0.0.1", "localhost", "::1"):
        typer.secho(f"warning: listening on {host}: anyone who can reach this port can use the models",
                    err=True, fg=typer.colors.YELLOW)
    typer.echo(f"serving {', '.join(loaded)} on http://{host}:{port}/ (editor), /docs (API)", err=True)
    uvicorn.run(create_app(loaded, limits), host=host, port=port, log_level="warning")
