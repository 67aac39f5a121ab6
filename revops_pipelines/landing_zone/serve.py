"""The receiver on uvicorn: in the foreground (`revops webhooks serve`) or for a `with` block."""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from starlette.applications import Starlette

from revops_pipelines.landing_zone.app import DEFAULT_BODY_LIMIT, ReceiverStats, build_app
from revops_pipelines.landing_zone.receipts import ReceiptWriter, record_missing
from revops_pipelines.ledger.store import Ledger

START_TIMEOUT_S = 10.0


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # Declared TCP so asyncio sets TCP_NODELAY; otherwise small replies wait for a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    return sock


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop when installed (what uvicorn itself would pick), else the standard loop."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


@dataclass
class Receiver:
    """A listening receiver: its base URL, its counters and its receipt writer."""

    url: str
    stats: ReceiverStats
    receipts: ReceiptWriter

    def flush_receipts(self, timeout: float = 30.0) -> bool:
        """Wait until the ledger has the receipt of every event landed so far."""
        return self.receipts.flush(timeout)


class _Server:
    def __init__(self, app: Starlette, *, host: str, port: int) -> None:
        self.sock = _listen(host, port)
        shown = f"[{host}]" if ":" in host else host
        self.url = f"http://{shown}:{self.sock.getsockname()[1]}"
        self.server = uvicorn.Server(
            uvicorn.Config(
                app,
                lifespan="off",
                log_level="warning",
                access_log=False,
                timeout_graceful_shutdown=2,
            )
        )
        self.failure: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="revops-webhooks", daemon=True)

    def _run(self) -> None:
        try:
            with asyncio.Runner(loop_factory=_loop_factory()) as runner:
                runner.run(self.server.serve(sockets=[self.sock]))
        except BaseException as error:  # reported by start()
            self.failure = error

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self.server.started:
            if self.failure is not None or not self.thread.is_alive():
                self.stop()
                raise RuntimeError(f"webhook receiver failed to start: {self.failure!r}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"webhook receiver did not start within {START_TIMEOUT_S} s")
            time.sleep(0.005)

    def stop(self) -> None:
        self.server.should_exit = True
        if self.thread.is_alive():
            self.thread.join(timeout=10)
        self.sock.close()


@contextmanager
def running_receiver(
    landing_dir: Path,
    *,
    secrets: Mapping[str, str],
    ledger_url: str,
    host: str = "127.0.0.1",
    port: int = 0,
    body_limit: int = DEFAULT_BODY_LIMIT,
) -> Iterator[Receiver]:
    """The receiver listening for the duration of a `with` block (port 0 picks a free one).

    Before it listens, files landed without a receipt (by a receiver that died with receipts
    queued) get theirs; when it stops, every queued receipt is written.
    """
    stats = ReceiverStats()
    with Ledger(ledger_url) as ledger:
        record_missing(ledger, Path(landing_dir))
        receipts = ReceiptWriter(ledger).start()
        try:
            app = build_app(
                landing_dir, secrets=secrets, receipts=receipts, body_limit=body_limit, stats=stats
            )
            server = _Server(app, host=host, port=port)
            server.start()
            try:
                yield Receiver(url=server.url, stats=stats, receipts=receipts)
            finally:
                server.stop()
        finally:
            receipts.stop()


def serve_forever(
    landing_dir: Path,
    *,
    secrets: Mapping[str, str],
    ledger_url: str,
    host: str,
    port: int,
    body_limit: int = DEFAULT_BODY_LIMIT,
) -> None:
    """`revops webhooks serve`: print `webhooks=<base url>` once listening, serve until stopped."""
    stop = threading.Event()

    def request_stop(signum: int, frame: object) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with running_receiver(
            landing_dir,
            secrets=secrets,
            ledger_url=ledger_url,
            host=host,
            port=port,
            body_limit=body_limit,
        ) as receiver:
            print(f"webhooks={receiver.url}", flush=True)
            while not stop.wait(0.5):
                pass
    except OSError as error:
        print(f"revops webhooks serve: {error}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
