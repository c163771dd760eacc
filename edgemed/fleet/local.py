"""A whole fleet in this process, for ``edgemed demo``, the examples and tests: an embedded
loopback broker (or a given one), a fleet server over SQLite and an API token."""

from __future__ import annotations

import json
import secrets
import tempfile
import urllib.parse
import urllib.request
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from ..config import BrokerConfig
from ..errors import FleetConflictError
from .broker import EmbeddedBroker
from .server import FleetServer
from .store import SQLiteStore

__all__ = ["LocalFleet"]


def _get_json(url: str, token: str) -> Any:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


class LocalFleet:
    """A whole fleet on this machine, for the demo and ``examples/``: a loopback MQTT broker
    (embedded amqtt unless ``broker_url`` is given), a :class:`~edgemed.fleet.server.FleetServer`
    (ingest, alert rules, REST API and dashboard) over SQLite in ``workdir`` (default: a
    temporary folder), and a random API token. ``get("/api/…")`` reads the API as a client would.
    """

    def __init__(
        self,
        broker_url: str | None = None,
        workdir: Path | None = None,
        *,
        port: int = 0,
        echo: Callable[[str], None] = print,
    ) -> None:
        self._broker_url = broker_url
        self._workdir = workdir
        self._port = port
        self._echo = echo
        self._stack = ExitStack()
        self.token = secrets.token_urlsafe(16)

    def __enter__(self) -> LocalFleet:
        stack = self._stack
        try:
            if self._broker_url is None:
                embedded = stack.enter_context(EmbeddedBroker())
                self.broker = BrokerConfig(port=embedded.port)
                self._echo(f"broker   embedded amqtt on 127.0.0.1:{embedded.port}")
            else:
                self.broker = BrokerConfig.from_url(self._broker_url)
                self._echo(f"broker   {self.broker.host}:{self.broker.port}")
            self.workdir = self._workdir or Path(
                stack.enter_context(tempfile.TemporaryDirectory(prefix="edgemed-demo-"))
            )
            self.workdir.mkdir(parents=True, exist_ok=True)
            self.store = SQLiteStore(self.workdir / "fleet.sqlite3")
            stack.callback(self.store.close)
            try:
                self.server = stack.enter_context(
                    FleetServer(self.store, self.broker, token=self.token, port=self._port)
                )
            except FleetConflictError as exc:
                raise FleetConflictError(
                    f"{exc}. This local fleet would be a second store on that broker, so it "
                    "did not start and nothing was sent: run without --broker (an embedded "
                    "broker), or point --broker at a broker no fleet serves"
                ) from exc
            self.url = f"http://127.0.0.1:{self.server.api.port}"
            self._echo(
                f"fleet    ingest subscribed; REST API on {self.url}/api/ (store {self.workdir})"
            )
        except BaseException:
            stack.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def get(self, path: str) -> Any:
        """GET ``path`` (e.g. ``/api/results?limit=100``) from the fleet's REST API."""
        return _get_json(self.url + path, self.token)

    def results(self, **query: str | int) -> list[dict[str, Any]]:
        """Every stored result matching ``query`` (``device_id``, ``kind``…), all pages."""
        items: list[dict[str, Any]] = []
        params: dict[str, str | int] = {**query, "limit": 1000}
        while True:
            page = self.get("/api/results?" + urllib.parse.urlencode(params))
            items += page["items"]
            if page["next_cursor"] is None:
                return items
            params["cursor"] = page["next_cursor"]
