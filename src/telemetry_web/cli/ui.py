"""``telemetry ui``: serve the web page over the store with uvicorn and print its URL."""

from __future__ import annotations

import ipaddress
import os

import click

from ..errors import MissingExtraError
from ._output import CliError, default_store_path, store_option

__all__ = ["ui"]


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine (127.0.0.0/8, ::1,
    localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to any address


@click.command()
@store_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", type=click.IntRange(0, 65535), default=8321, show_default=True)
@click.option(
    "--token",
    envvar="TELEMETRY_UI_TOKEN",
    help="Required on every request (needed to bind beyond loopback). Env: TELEMETRY_UI_TOKEN.",
)
def ui(store_path: str | None, host: str, port: int, token: str | None) -> None:
    """Serve a web page over the store: traces, routes, a live log tail and health."""
    if not token and not is_loopback(host):
        raise CliError(
            f"--host {host} is reachable from other machines: give --token (or set "
            "TELEMETRY_UI_TOKEN) so that every request must carry it"
        )
    # Under `telemetry run` the launcher would wrap this app too: keep it out, so that the
    # UI's own requests never reach the store it shows.
    disabled = os.environ.get("TELEMETRY_DISABLED_INSTRUMENTATIONS", "")
    os.environ["TELEMETRY_DISABLED_INSTRUMENTATIONS"] = ",".join(
        filter(None, [disabled, "starlette", "uvicorn"])
    )
    try:
        import uvicorn

        from ..ui import create_app

        app = create_app(os.path.abspath(store_path or default_store_path()), token=token or None)
    except MissingExtraError as exc:
        raise CliError(str(exc)) from None
    except ImportError:
        raise CliError(str(MissingExtraError("telemetry ui", "uvicorn", "ui"))) from None
    shown = f"[{host}]" if ":" in host else host
    click.echo(f"telemetry ui: http://{shown}:{port}/", nl=True)
    if token:
        click.echo("  token required: open the page once with ?token=<token>, or send "
                   "Authorization: Bearer <token>")  # fmt: skip
    # No access log and no Telemetry here: the UI's own requests stay out of the store.
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False,
                            lifespan="off")  # fmt: skip
    uvicorn.Server(config).run()
