"""``edgemed fleet serve``: ingest from the broker, store, REST API, dashboard and exports.

The fleet side of the command: it imports only the fleet package and the leaves it uses, never
a runtime, OpenCV or the compiled kernels (tests/unit/test_fleet_imports_alone.py).
"""

from __future__ import annotations

import argparse
import contextlib
import os
from typing import Any

from ..errors import InputError
from ..extras import require
from .args import Subparsers, host_port, positive_int
from .broker_options import add_broker_options, broker_from_args
from .rollouts import add_rollout_commands, bundle_shelf
from .users import add_api_security_options, add_user_commands, api_security_from_args
from .wards import add_ward_commands, open_serve_store

__all__ = ["add_fleet_commands", "cmd_fleet_serve"]


def cmd_fleet_serve(args: argparse.Namespace) -> int:
    import secrets
    import signal
    import threading

    require("fleet", "edgemed fleet serve")
    from ..fleet.alerts import AlertRules
    from ..fleet.server import FleetServer

    broker = broker_from_args(args)  # checked (TLS files, no secret in the URL) before the store
    jetstream = _jetstream(args)  # --jetstream nats://… (fleet/jetstream.py), checked likewise
    amqp = _amqp(args)  # --amqp amqp://… (fleet/amqp.py)
    https, sessions = api_security_from_args(args)  # --api-cert/--api-key, session lengths
    rules = AlertRules(
        backlog_threshold=args.backlog_threshold, offline_after_s=args.offline_after * 60.0
    )
    store = open_serve_store(args)  # --db, --pg-schema, and --timezone (cli/wards.py)
    given_token = args.token or os.environ.get("EDGEMED_FLEET_TOKEN")
    token = given_token or secrets.token_urlsafe(24)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    exporters = _exporters(args, store)  # --fhir-push, --hl7-mllp
    server = FleetServer(
        store,
        broker,
        token=token,
        host=args.host,
        port=args.port,
        workers=args.workers,
        shared_group=args.shared_group,
        rules=rules,
        exporters=exporters,
        retention=_retention(args, store),
        bundles=bundle_shelf(args),  # --bundle-dir, --trust (cli/rollouts.py)
        https=https,
        sessions=sessions,
        jetstream=jetstream,
        amqp=amqp,
    )
    with server:
        where = "PostgreSQL" if str(args.db).startswith("postgres") else args.db
        print(
            f"fleet: ingest from {broker.host}:{broker.port}{' (TLS)' if broker.tls else ''}, "
            f"store {where}, "
            f"dashboard {server.api.scheme}://{args.host}:{server.api.port}/ "
            f"API {server.api.scheme}://{args.host}:{server.api.port}/api/",
            flush=True,
        )
        if not given_token:
            print(f"fleet: API token {token}", flush=True)
        for exporter in exporters:
            print(f"fleet: exporting every result to {exporter.target}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()
    store.close()
    return 0


def _exporters(args: argparse.Namespace, store: Any) -> tuple[Any, ...]:
    """The export workers FleetServer runs: --fhir-push, --hl7-mllp."""
    exporters: list[Any] = []
    if args.fhir_push or args.hl7_mllp:
        from ..fleet.exports.worker import FhirPusher, Hl7Sender

        if args.fhir_push:
            bearer = os.environ.get("EDGEMED_FHIR_TOKEN") or None
            exporters.append(FhirPusher(store, args.fhir_push, bearer=bearer))
        if args.hl7_mllp:
            host, _, port = args.hl7_mllp.rpartition(":")
            exporters.append(Hl7Sender(store, host or "127.0.0.1", int(port)))
    return tuple(exporters)


def add_fleet_commands(sub: Subparsers) -> None:
    """``edgemed fleet serve`` and its options, under the command's subparsers ``sub``."""
    fleet = sub.add_parser("fleet", help="fleet manager")
    fleet_sub = fleet.add_subparsers(dest="fleet_command", required=True)
    serve = fleet_sub.add_parser(
        "serve", help="ingest results from the broker; serve the REST API and the dashboard"
    )
    add_broker_options(serve)
    serve.add_argument(
        "--db",
        default="edgemed-fleet.sqlite3",
        help="SQLite file (default) or postgresql://user@host/db",
    )
    serve.add_argument(
        "--pg-schema", default="edgemed", help="PostgreSQL schema for the fleet's tables"
    )
    serve.add_argument(
        "--workers",
        type=positive_int,
        default=1,
        help="ingest workers sharing a $share subscription",
    )
    serve.add_argument(
        "--shared-group",
        default=None,
        help="ingest $share group (default edgemed-fleet-<store id>: every process on the "
        "same store joins it; a fleet on another store is refused)",
    )
    serve.add_argument(
        "--jetstream",
        metavar="NATS_URLS",
        default=None,
        help="pull results from this NATS cluster's JetStream work queue instead of a $share "
        "group (nats://host:port[,nats://host:port…]; --broker still names an MQTT port for "
        "presence): docs/fleet.md, NATS with JetStream",
    )
    serve.add_argument(
        "--amqp",
        metavar="AMQP_URLS",
        default=None,
        help="consume results from this RabbitMQ cluster's quorum queue instead of a $share "
        "group (amqp://host:port[,amqp://host:port…]; credentials from EDGEMED_AMQP_USER and "
        "EDGEMED_AMQP_PASSWORD; --broker still names an MQTT port for presence): docs/fleet.md, "
        "RabbitMQ",
    )
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument(
        "--token",
        default=None,
        help="API token, 16+ characters (default: $EDGEMED_FLEET_TOKEN, else a random one, "
        "printed); prefer the variable: arguments are visible to other local users",
    )
    _add_alert_and_export_options(serve)
    _add_retention_options(serve)
    add_api_security_options(serve)
    serve.set_defaults(func=cmd_fleet_serve)
    add_ward_commands(fleet_sub, serve)  # fleet ward …, serve --timezone
    add_rollout_commands(fleet_sub, serve)  # fleet bundles …, fleet rollouts …
    add_user_commands(fleet_sub)  # fleet users …, fleet tokens …


def _add_alert_and_export_options(serve: argparse.ArgumentParser) -> None:
    """What raises a device alert, and where every result is exported."""
    serve.add_argument(
        "--offline-after",
        type=float,
        default=5.0,
        help="alert when a device is offline this long (minutes)",
    )
    serve.add_argument(
        "--backlog-threshold",
        type=int,
        default=1000,
        help="alert when a device holds this many unacked results",
    )
    serve.add_argument(
        "--fhir-push",
        metavar="URL",
        default=None,
        help="push every result to this FHIR R4 server base as transaction Bundles "
        "(conditional creates; bearer token from $EDGEMED_FHIR_TOKEN)",
    )
    serve.add_argument(
        "--hl7-mllp",
        metavar="HOST:PORT",
        type=host_port,
        default=None,
        help="send every result as HL7 v2 ORU^R01 over MLLP, the next after each ACK",
    )


def _jetstream(args: argparse.Namespace) -> Any:
    """The JetStream the workers pull from (--jetstream), or None: ingest over MQTT."""
    if not args.jetstream:
        return None
    from ..fleet.jetstream import JetStreamConfig

    return JetStreamConfig.from_urls(args.jetstream)


def _amqp(args: argparse.Namespace) -> Any:
    """The RabbitMQ queue the workers consume from (--amqp), or None."""
    if not args.amqp:
        return None
    if args.jetstream:
        raise InputError("--amqp and --jetstream: ingest from one of them")
    from ..fleet.amqp import AmqpConfig

    return AmqpConfig.from_urls(args.amqp)


def _days(text: str) -> float:
    value = float(text)
    if not 0 < value < 100_000:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of days > 0")
    return value


def _add_retention_options(serve: argparse.ArgumentParser) -> None:
    """How long the store keeps what (docs/fleet.md, Retention and quotas)."""
    serve.add_argument(
        "--retain-days",
        type=_days,
        default=None,
        metavar="DAYS",
        help="delete results, acknowledged alerts and dead letters older than this (days; "
        "default: keep them); checked hourly, deleted in batches",
    )
    for kind in ("results", "alerts", "dead-letters"):
        serve.add_argument(
            f"--retain-{kind}-days",
            type=_days,
            default=None,
            metavar="DAYS",
            help=f"keep {kind.replace('-', ' ')} this long instead (days)",
        )
    serve.add_argument(
        "--dead-letter-quota",
        type=int,
        default=10_000,
        metavar="N",
        help="keep at most N dead letters (default 10,000; 0: none); beyond it they are "
        "refused and counted per reason (GET /api/dead-letters, refused)",
    )
    serve.add_argument(
        "--dead-letter-quota-mb",
        type=float,
        default=None,
        metavar="MB",
        help="and at most this many MB of kept payload prefixes (1 KiB each at most)",
    )


def _retention(args: argparse.Namespace, store: Any) -> Any:
    """Set the store's dead-letter quota; the retention policy FleetServer applies."""
    from ..fleet.store.dead_letters import DeadLetterQuota
    from ..fleet.store.retention import RetentionPolicy

    mb = args.dead_letter_quota_mb
    store.dead_letter_quota = DeadLetterQuota(
        rows=max(0, args.dead_letter_quota), stored_bytes=None if mb is None else int(mb * 1e6)
    )
    days = args.retain_days
    return RetentionPolicy(
        results_days=args.retain_results_days or days,
        alerts_days=args.retain_alerts_days or days,
        dead_letters_days=args.retain_dead_letters_days or days,
    )
