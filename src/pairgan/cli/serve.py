"""``pairgan serve``: the REST API and the web editor (needs the ``web`` extra)."""

from __future__ import annotations

from typing import List, Optional

import typer

from pairgan.cli.common import fail, user_errors_reported

__all__ = ["serve"]


def serve(
    models: List[str] = typer.Argument(
        ..., help="Run or checkpoint folders, packaged models, Hub models (hf://OWNER/NAME[@REVISION]) or exported "
        "files (.onnx, .pt); NAME=PATH names a model (default: the run folder's or repository's name)."),
    host: str = typer.Option("127.0.0.1", help="Interface to listen on (loopback by default; 0.0.0.0 = all: needs "
                             "--token, or --insecure)."),
    port: int = typer.Option(8000, help="TCP port."),
    device: str = typer.Option("auto", help="auto, cpu, cuda, mps (checkpoints; .onnx files run on the CPU)."),
    mode: Optional[str] = typer.Option(None, help="Inference mode of checkpoints (pix2pix: paper or eval)."),
    backend: str = typer.Option("auto", help="Checkpoints: auto (a compiled graph, cached in CHECKPOINT/compiled, "
                                "where it is exact for the mode; else eager), torch (eager) or torchscript."),
    workers: int = typer.Option(1, help="Worker threads (decoding/encoding overlap; one inference at a time)."),
    queue: int = typer.Option(8, help="Requests admitted at once (running + waiting); more get 503."),
    timeout: float = typer.Option(60.0, help="Per-request time limit in seconds (504 when exceeded)."),
    max_upload_mb: float = typer.Option(16.0, help="Largest request body in MiB (413 beyond)."),
    max_pixels: int = typer.Option(4096 * 4096, help="Largest image, width x height, checked before decoding (413)."),
    token: Optional[str] = typer.Option(None, envvar="PAIRGAN_TOKEN", show_envvar=True,
                                        help="Access token: API requests need 'Authorization: Bearer TOKEN' (the "
                                        "web editor asks for it once). Required on a non-loopback --host."),
    insecure: bool = typer.Option(False, "--insecure", help="Allow a non-loopback --host without --token."),
    allow_host: List[str] = typer.Option([], "--allow-host", help="Another Host name to answer (repeatable); on a "
                                         "loopback --host only localhost/127.0.0.1/::1 are answered otherwise "
                                         "(DNS rebinding)."),
    cors_origin: List[str] = typer.Option([], "--cors-origin", help="An origin (https://site.example) whose pages "
                                          "may call the API (repeatable); none by default."),
    header_timeout: float = typer.Option(10.0, help="Seconds a client has to send its request headers; then the "
                                         "connection is dropped."),
    keep_alive: int = typer.Option(5, help="Seconds an idle keep-alive connection is kept."),
    max_header_kb: int = typer.Option(16, help="Largest request line + headers in KiB (400 beyond)."),
    max_connections: int = typer.Option(64, help="Connections served at once (503 beyond)."),
    warm: bool = typer.Option(True, "--warm-up/--no-warm-up", help="Compile each model's graph (backend auto) for "
                              "uploads of its training size before serving, so no request waits for it."),
) -> None:
    """Serve models over HTTP: the web editor at /, POST /v1/translate, GET /v1/models, /healthz, /openapi.json."""
    try:
        # Deferred: pairgan.serve needs fastapi and uvicorn (the optional `web` extra); the rest of the CLI does not.
        from pairgan.serve.app import create_app
        from pairgan.serve.limits import Access, Limits, is_loopback
        from pairgan.serve.models import load_models, warm_up
        from pairgan.serve.server import ServerOptions, run_server
    except ImportError as exc:
        fail(f"serving needs the web extra: pip install 'pairgan[web]' ({exc})")
    token = (token or "").strip() or None
    if not is_loopback(host) and token is None and not insecure:
        fail(f"--host {host} is not a loopback address: anyone who can reach it could use the server; give "
             "--token TOKEN (or PAIRGAN_TOKEN), or --insecure to serve without one")
    for name, value, lo in (("--header-timeout", header_timeout, 0.1), ("--keep-alive", keep_alive, 1),
                            ("--max-header-kb", max_header_kb, 1), ("--max-connections", max_connections, 1),
                            ("--timeout", timeout, 0.1), ("--max-upload-mb", max_upload_mb, 0.001),
                            ("--max-pixels", max_pixels, 1), ("--workers", workers, 1), ("--queue", queue, 1)):
        if not value >= lo or value == float("inf"):
            fail(f"{name} {value}: expected a finite number >= {lo}")
    for origin in cors_origin:
        if origin == "*" or not origin.startswith(("http://", "https://")):
            fail(f"--cors-origin {origin!r}: expected an origin such as https://site.example (no wildcard)")
    with user_errors_reported(ValueError):
        loaded = load_models(models, device=device, mode=mode, backend=backend)
        for model in loaded.values() if warm else ():
            done = warm_up(model)
            if done is not None:
                typer.echo(done, err=True)
    limits = Limits(max_upload_bytes=int(max_upload_mb * 2**20), max_pixels=max_pixels, workers=workers,
                    queue_size=queue, timeout_s=timeout)
    access = Access.for_bind(host, token=token, extra_hosts=tuple(h.strip().lower() for h in allow_host),
                             cors_origins=tuple(cors_origin))
    options = ServerOptions(header_timeout=header_timeout, keep_alive_timeout=keep_alive,
                            max_header_bytes=max_header_kb * 1024, max_connections=max_connections)
    if not is_loopback(host) and token is None:
        typer.secho(f"warning: listening on {host} without a token (--insecure): anyone who can reach this port "
                    "can use the models", err=True, fg=typer.colors.YELLOW)
    typer.echo(f"serving {', '.join(loaded)} on http://{host}:{port}/ (editor), /openapi.json (API)"
               + (" (token required)" if token else ""), err=True)
    run_server(create_app(loaded, limits, access), host, port, options)
