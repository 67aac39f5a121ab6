"""Run the three sandbox systems over one state directory, each behind the fault layer.

All three uvicorn servers share one event loop on a background thread; the sockets
are bound before the loop starts, so port 0 gives a free port whose URL is known at once.
Each server also answers `/_sandbox/...` (scripted changes, webhook delivery counts)
outside the fault layer, and with `deliver_to` every write is delivered as a webhook.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from revops_pipelines.sandbox import billing, crm, erp
from revops_pipelines.sandbox.changes import ChangeError, apply_change
from revops_pipelines.sandbox.faults import (
    SYSTEMS,
    FaultMiddleware,
    FaultSpec,
    FaultSpecError,
    parse_concurrency,
    parse_faults,
    parse_rate_limits,
)
from revops_pipelines.sandbox.state import Credentials, StateFileError, StateStore
from revops_pipelines.sandbox.webhooks import Deliverer, WebhookSecrets

__all__ = [
    "Credentials",
    "SandboxUrls",
    "WebhookSecrets",
    "running_sandbox",
    "serve_forever",
    "SandboxServer",
    "request_change",
]

START_TIMEOUT_S = 10.0
ADMIN_PREFIX = "/_sandbox/"
# Written into the state directory while it is served, so `revops sandbox change --state DIR`
# asks the running server instead of editing files under its feet.
SERVING_FILE = ".serving.json"


@dataclass(frozen=True)
class SandboxUrls:
    """Base URLs without a trailing slash."""

    crm: str
    billing: str
    erp: str
    deliverer: Deliverer | None = field(default=None, compare=False, repr=False)

    def for_system(self, system: str) -> str:
        return getattr(self, system)


def _coerce_faults(
    faults: str | FaultSpec | Mapping[str, FaultSpec] | None,
) -> dict[str, FaultSpec]:
    if faults is None or isinstance(faults, str):
        return parse_faults(faults)
    if isinstance(faults, FaultSpec):
        return dict.fromkeys(SYSTEMS, faults)
    return {system: faults.get(system, FaultSpec()) for system in SYSTEMS}


def _coerce_rate_limits(rate_limits: Iterable[str] | Mapping[str, float]) -> dict[str, float]:
    if isinstance(rate_limits, Mapping):
        return {system: float(rate) for system, rate in rate_limits.items()}
    return parse_rate_limits(rate_limits)


def _admin_app(store: StateStore, deliverer: Deliverer | None) -> Starlette:
    async def change(request: Request) -> Response:
        name = request.path_params["name"]
        try:
            touched = apply_change(store, name)
        except KeyError as error:
            return JSONResponse({"error": str(error.args[0])}, status_code=404)
        except ChangeError as error:
            return JSONResponse({"error": str(error)}, status_code=409)
        return JSONResponse({"change": name, "touched": touched})

    async def webhooks(request: Request) -> Response:
        if deliverer is None:
            return JSONResponse({"delivering": False})
        return JSONResponse({"delivering": True, **deliverer.stats, "url": deliverer.url})

    return Starlette(
        routes=[
            Route(f"{ADMIN_PREFIX}changes/{{name}}", change, methods=["POST"]),
            Route(f"{ADMIN_PREFIX}webhooks", webhooks, methods=["GET"]),
        ]
    )


class _WithAdmin:
    """Sends `/_sandbox/...` to the admin app, around the fault layer; the rest to the system."""

    def __init__(self, app: FaultMiddleware, admin: Starlette) -> None:
        self.app = app
        self.admin = admin

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(ADMIN_PREFIX):
            await self.admin(scope, receive, send)
        else:
            await self.app(scope, receive, send)


def build_apps(
    store: StateStore,
    *,
    credentials: Credentials,
    faults: Mapping[str, FaultSpec],
    rate_limits: Mapping[str, float],
    seed: int | None,
    concurrency: Mapping[str, int] | None = None,
    deliverer: Deliverer | None = None,
) -> dict[str, _WithAdmin]:
    """Each system's app wrapped in its fault layer; seeds differ per system but stay fixed.

    `concurrency` caps requests in flight per system (the ERP answers 429 above it).
    """
    modules: dict[str, ModuleType] = {"crm": crm, "billing": billing, "erp": erp}
    admin = _admin_app(store, deliverer)
    apps: dict[str, _WithAdmin] = {}
    for number, system in enumerate(SYSTEMS):
        spec = faults.get(system, FaultSpec())
        module = modules[system]
        faulty = FaultMiddleware(
            module.build_app(store, credentials=credentials, faults=spec),
            system_errors=module.ERRORS,
            rate_limit=rate_limits.get(system),
            faults=spec,
            seed=None if seed is None else seed * 3 + number,
            max_in_flight=(concurrency or {}).get(system),
        )
        apps[system] = _WithAdmin(faulty, admin)
    return apps


def _deliverer(
    store: StateStore,
    deliver_to: str | None,
    *,
    webhook_secrets: WebhookSecrets | None,
    faults: Mapping[str, FaultSpec],
    seed: int | None,
) -> Deliverer | None:
    """A started deliverer listening to every write of `store`, when asked to deliver."""
    if not deliver_to:
        return None
    if webhook_secrets is None:
        raise ValueError("delivering webhooks needs the three webhook secrets")
    deliverer = Deliverer(deliver_to, secrets=webhook_secrets, faults=faults, seed=seed).start()
    store.listeners.append(deliverer.listen)
    return deliverer


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop when it is installed (uvicorn's own choice); the standard loop otherwise."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP matters: asyncio only sets TCP_NODELAY on sockets that say they are
    # TCP, and without it every two-write response waits ~40 ms for a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def _url(host: str, sock: socket.socket) -> str:
    port = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


class SandboxServer:
    """The three servers on one background event loop; `start()` returns once they listen."""

    def __init__(
        self,
        apps: Mapping[str, _WithAdmin],
        *,
        host: str = "127.0.0.1",
        ports: Mapping[str, int] | None = None,
    ) -> None:
        ports = ports or {}
        self._sockets: dict[str, socket.socket] = {}
        try:
            for system in SYSTEMS:
                self._sockets[system] = _bind(host, int(ports.get(system, 0)))
        except OSError:
            for sock in self._sockets.values():
                sock.close()
            raise
        self.urls = SandboxUrls(**{s: _url(host, sock) for s, sock in self._sockets.items()})
        self._servers = {
            system: uvicorn.Server(
                uvicorn.Config(
                    apps[system],
                    lifespan="off",
                    log_level="warning",
                    access_log=False,
                    timeout_graceful_shutdown=2,
                )
            )
            for system in SYSTEMS
        }
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None

    def start(self) -> SandboxUrls:
        self._thread = threading.Thread(target=self._run, name="revops-sandbox", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not all(server.started for server in self._servers.values()):
            if self._failure is not None or not self._thread.is_alive():
                self.stop()
                raise RuntimeError(f"sandbox servers failed to start: {self._failure!r}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"sandbox servers did not start within {START_TIMEOUT_S} s")
            time.sleep(0.005)
        return self.urls

    def _run(self) -> None:
        async def serve_all() -> None:
            await asyncio.gather(
                *(
                    server.serve(sockets=[self._sockets[system]])
                    for system, server in self._servers.items()
                )
            )

        try:
            with asyncio.Runner(loop_factory=_loop_factory()) as runner:
                runner.run(serve_all())
        except BaseException as error:  # reported by start() or stop()
            self._failure = error

    def stop(self) -> None:
        for server in self._servers.values():
            server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        for sock in self._sockets.values():
            sock.close()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()


@contextmanager
def running_sandbox(
    state_dir: Path,
    *,
    host: str = "127.0.0.1",
    ports: Mapping[str, int] | None = None,
    rate_limits: Iterable[str] | Mapping[str, float] = (),
    faults: str | FaultSpec | Mapping[str, FaultSpec] | None = None,
    credentials: Credentials | None = None,
    seed: int | None = None,
    concurrency: Mapping[str, int] | None = None,
    deliver_to: str | None = None,
    webhook_secrets: WebhookSecrets | None = None,
) -> Iterator[SandboxUrls]:
    """Serve `state_dir` for the duration of a `with` block; yields the three base URLs.

    `rate_limits` takes `["billing=100/s"]` or `{"billing": 100.0}`; `faults` takes the
    `--faults` string, one FaultSpec for all systems, or one per system. With `deliver_to`
    (a receiver's base URL) every write is delivered there; `urls.deliverer` tells when.
    """
    store = StateStore.load(Path(state_dir))
    spec = _coerce_faults(faults)
    deliverer = _deliverer(
        store, deliver_to, webhook_secrets=webhook_secrets, faults=spec, seed=seed
    )
    try:
        apps = build_apps(
            store,
            credentials=credentials or Credentials(),
            faults=spec,
            rate_limits=_coerce_rate_limits(rate_limits),
            seed=seed,
            concurrency=concurrency,
            deliverer=deliverer,
        )
        server = SandboxServer(apps, host=host, ports=ports)
        urls = server.start()
        try:
            yield SandboxUrls(urls.crm, urls.billing, urls.erp, deliverer=deliverer)
        finally:
            server.stop()
            with store.lock:
                store.journal.compact()
    finally:
        if deliverer is not None:
            deliverer.stop()


def serve_forever(
    state_dir: Path,
    *,
    host: str,
    ports: dict[str, int],
    rate_limits: list[str],
    faults: str | None,
    credentials: Credentials,
    concurrency: list[str] | None = None,
    deliver_to: str | None = None,
    webhook_secrets: WebhookSecrets | None = None,
) -> None:
    """`revops sandbox serve`: print `crm=`, `billing=`, `erp=` URLs, serve until interrupted.

    A state file that cannot be served, or a bad option, exits with status 2.
    """
    try:
        store = StateStore.load(Path(state_dir))
        spec = parse_faults(faults)
        limits = parse_rate_limits(rate_limits)
        in_flight = parse_concurrency(concurrency or [])
    except StateFileError as error:
        print(f"revops sandbox serve: bad state file {error}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
    except FaultSpecError as error:
        print(f"revops sandbox serve: {error}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
    deliverer = _deliverer(
        store, deliver_to, webhook_secrets=webhook_secrets, faults=spec, seed=None
    )
    serving = Path(state_dir) / SERVING_FILE
    try:
        apps = build_apps(
            store,
            credentials=credentials,
            faults=spec,
            rate_limits=limits,
            seed=None,
            concurrency=in_flight,
            deliverer=deliverer,
        )
        try:
            server = SandboxServer(apps, host=host, ports=ports)
        except OSError as error:
            print(f"revops sandbox serve: {error}", file=sys.stderr, flush=True)
            raise SystemExit(2) from None

        # The loaded state lives as long as the process: keep the cyclic collector off it.
        gc.freeze()
        stop = threading.Event()

        def request_stop(signum: int, frame: object) -> None:
            stop.set()

        previous = {
            sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            urls = server.start()
            serving.write_text(json.dumps({"pid": os.getpid(), "admin": urls.billing}))
            for system in SYSTEMS:
                print(f"{system}={urls.for_system(system)}", flush=True)
            while not stop.wait(0.5):
                if not server.alive:
                    break
        finally:
            serving.unlink(missing_ok=True)
            server.stop()
            with store.lock:
                store.journal.compact()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    finally:
        if deliverer is not None:
            deliverer.stop()


def request_change(state_dir: Path, name: str) -> list[dict[str, str]]:
    """Run a scripted change: through the server serving `state_dir`, else on its files."""
    serving = Path(state_dir) / SERVING_FILE
    if serving.exists():
        admin = json.loads(serving.read_text())["admin"]
        try:
            response = httpx.post(f"{admin}{ADMIN_PREFIX}changes/{name}", timeout=30)
        except httpx.ConnectError:
            pass  # the server that wrote the file is gone: the files are free to edit
        else:
            body = response.json()
            if response.status_code == 404:
                raise KeyError(body["error"])
            if response.status_code == 409:
                raise ChangeError(body["error"])
            response.raise_for_status()
            return body["touched"]
    store = StateStore.load(Path(state_dir))
    touched = apply_change(store, name)
    with store.lock:
        store.journal.compact()
    return touched
