"""`dip serve`: restore a photo in the browser. Open or drop an image, pick the task, paint the
inpainting mask with a brush, watch the network draw the result live, compare before and after,
download. See docs/serve.md."""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
import webbrowser

from ..errors import DipError
from .app import Limits, create_app

log = logging.getLogger("dip")

__all__ = ["Limits", "create_app", "serve"]


def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    device: str = "auto",
    open_browser: bool = False,
    limits: Limits = Limits(),
    announce=print,
) -> None:
    """Serve the page until interrupted. `announce` gets the URL (with its token) once the port
    is bound (port 0: any free port)."""
    import uvicorn

    app = create_app(device, limits=limits)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(128)  # connections wait from now on, even before the server loop runs
    except OSError as error:
        sock.close()
        raise DipError(f"cannot listen on {host}:{port}: {error.strerror or error}") from None
    port = sock.getsockname()[1]
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    url = f"http://{f'[{shown}]' if ':' in shown else shown}:{port}/?token={app.state.token}"
    if not _loopback(host):
        log.warning("dip serve: listening on %s, reachable from other machines; the token guards it", host)
    announce(url)
    if open_browser:
        threading.Timer(0.5, webbrowser.open, args=(url,)).start()
    config = uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=2)
    uvicorn.Server(config).run(sockets=[sock])


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"
