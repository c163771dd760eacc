"""The MQTT connection every link shares, the device's publisher (sync/mqtt.py) and the fleet's
ingest and presence (fleet/): a configured paho client, the broker's protocol found by asking
it, a reconnect loop with full-jitter back-off (paho's own back-off has no jitter, so a fleet of
devices reconnecting after a broker restart would arrive in lock-step), and the retained
offline notice a link leaves when it stops.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Literal

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from .config import BrokerConfig, SyncConfig, tls_context

__all__ = [
    "announce_offline",
    "connect_failed",
    "full_jitter",
    "log_disconnect",
    "make_client",
    "probe_protocol",
    "probe_shared_subscriptions",
    "resolve_protocol",
    "run_connection",
]

log = logging.getLogger(__name__)

SESSION_EXPIRY_S = 24 * 3600  # how long a broker keeps a persistent session's queue (MQTT 5)


def make_client(
    client_id: str, broker: BrokerConfig, *, persistent_session: bool = False
) -> mqtt.Client:
    """A paho client configured from BrokerConfig; reconnects are driven by the caller.

    ``persistent_session``: the broker keeps the subscriptions and queues QoS1 messages while
    the client is away (MQTT 3.1.1 clean_session=False; for MQTT 5 see run_connection).
    """
    v5 = broker.protocol == "5"
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
        clean_session=None if v5 else not persistent_session,
        reconnect_on_failure=False,
    )
    client.on_socket_open = _no_delay
    if broker.username is not None:
        client.username_pw_set(broker.username, broker.password)
    if broker.tls is not None:  # config.tls_context: the CA only, name and dates checked
        client.tls_set_context(tls_context(broker.tls))
    return client


ErrorSink = Callable[[BaseException], None]


def connect_failed(broker: BrokerConfig, exc: BaseException, on_error: ErrorSink | None) -> None:
    """Log why a connection attempt failed and pass it on. A certificate the link refuses (wrong
    CA, expired, another host's name) is an ERROR: no retry fixes it, and the link never falls
    back to plain MQTT; anything else (refused, reset, timeout) is a broker away, INFO."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        log.error(
            "broker %s:%d: TLS refused, the broker's certificate does not verify: %s "
            "(it must be signed by the configured CA, valid now, and name %s); not connecting",
            broker.host, broker.port, exc.verify_message or exc, broker.host,
        )  # fmt: skip
    else:
        log.info("broker %s:%d unreachable: %s", broker.host, broker.port, exc)
    if on_error is not None:
        on_error(exc)


def log_disconnect(logger: logging.Logger, link: str, reason: Any, *, stopping: bool) -> None:
    """Every unplanned link loss at WARNING with the broker's reason code (a session taken over
    by another client with the same id shows as 0x8E in MQTT 5, a bare close in 3.1.1)."""
    if stopping:
        logger.info("%s link closed", link)
        return
    code = getattr(reason, "value", reason)
    logger.warning("%s link lost: %s (reason code %s)", link, reason, code)


def _no_delay(_client: mqtt.Client, _userdata: object, sock: object) -> None:
    # paho leaves Nagle on: each small publish/ack then waits for the peer's delayed ACK
    # (measured: 45 ms median submit->fleet-ack on loopback). Results are small: send now.
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


_REFUSED_VERSION = (0x84, 1)  # MQTT 5 "unsupported protocol version"; MQTT 3 return code 1


def probe_protocol(
    broker: BrokerConfig,
    client_id: str,
    timeout: float = 5.0,
    *,
    on_error: ErrorSink | None = None,
) -> Literal["5", "3.1.1"] | None:
    """Ask the broker with one MQTT 5 CONNECT which protocol it speaks.

    An MQTT 5 answer (even a refusal, e.g. bad credentials) means "5"; "unsupported protocol
    version", or the broker closing the connection before any CONNACK, means "3.1.1"; None if
    it is unreachable or has not answered within ``timeout`` (a slow broker is not an old one:
    ask again later). The probe uses its own client id and a clean session, so it never
    touches the real client's session.
    """
    probe = make_client(f"{client_id}-probe", replace(broker, protocol="5"))
    answer: list[Literal["5", "3.1.1"]] = []

    def on_connect(_c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        answer.append("3.1.1" if getattr(reason, "value", reason) in _REFUSED_VERSION else "5")

    def on_disconnect(_c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        # Only the broker closing on us says "old protocol"; paho giving up waiting does not.
        if not answer and getattr(reason, "value", None) != mqtt.MQTT_ERR_KEEPALIVE:
            answer.append("3.1.1")

    probe.on_connect = on_connect
    probe.on_disconnect = on_disconnect
    try:
        # A keepalive longer than the wait: paho's own CONNACK timeout must not end the probe.
        probe.connect(broker.host, broker.port, keepalive=max(broker.keepalive_s, int(timeout) + 5))
    except (OSError, ssl.SSLError) as exc:
        connect_failed(broker, exc, on_error)
        return None
    deadline = time.monotonic() + timeout
    while not answer and time.monotonic() < deadline:
        probe.loop(0.1)
    found = answer[0] if answer else None  # before our own disconnect calls on_disconnect
    with contextlib.suppress(Exception):
        probe.disconnect()
        probe.loop(0.1)
    if found is None:
        log.warning(
            "broker %s:%d accepted the connection but sent no CONNACK within %.0f s",
            broker.host, broker.port, timeout,
        )  # fmt: skip
    return found


def probe_shared_subscriptions(
    broker: BrokerConfig, client_id: str, group: str, timeout: float = 2.0
) -> bool | None:
    """Does the broker deliver ``$share/<group>/…`` subscriptions? None if it did not answer.

    MQTT 5 brokers may say so in CONNACK, 3.1.1 brokers cannot, and one that does not know
    the syntax (amqtt) grants the subscription and then delivers nothing: so subscribe, publish
    one message to ourselves and see whether it arrives.
    """
    topic = f"edgemed/fleet/v1/selftest/{client_id}"
    nonce = os.urandom(8).hex().encode()
    probe = make_client(f"{client_id}-share-probe", broker)
    state = {"connected": False, "subscribed": False, "received": False}

    def on_connect(client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if not reason.is_failure:
            state["connected"] = True
            client.subscribe(f"$share/{group}/{topic}", qos=1)

    def on_subscribe(client: mqtt.Client, *_args: Any) -> None:
        state["subscribed"] = True
        client.publish(topic, nonce, qos=1)

    def on_message(_c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        # Only our own message counts: amqtt, which does not know $share, was seen delivering
        # unrelated retained messages to such a subscription.
        if message.topic == topic and message.payload == nonce:
            state["received"] = True

    probe.on_connect, probe.on_subscribe, probe.on_message = on_connect, on_subscribe, on_message
    try:
        probe.connect(broker.host, broker.port, keepalive=max(broker.keepalive_s, 10))
    except (OSError, ssl.SSLError) as exc:
        connect_failed(broker, exc, None)
        return None
    deadline = time.monotonic() + timeout
    while not state["received"] and time.monotonic() < deadline:
        probe.loop(0.05)
    with contextlib.suppress(Exception):
        probe.disconnect()
        probe.loop(0.1)
    if state["received"]:
        return True
    return False if state["subscribed"] else None


def resolve_protocol(
    broker: BrokerConfig,
    client_id: str,
    sync: SyncConfig,
    stop: threading.Event,
    *,
    on_error: ErrorSink | None = None,
) -> BrokerConfig | None:
    """``broker`` with protocol "auto" replaced by what the broker speaks (probing with full
    jitter until it answers); None if ``stop`` is set first. ``on_error`` gets each failed
    connection attempt's exception."""
    attempt = 0
    while broker.protocol == "auto" and not stop.is_set():
        found = probe_protocol(broker, client_id, on_error=on_error)
        if found is not None:
            log.info("broker %s:%d speaks MQTT %s", broker.host, broker.port, found)
            return replace(broker, protocol=found)
        stop.wait(full_jitter(attempt, sync.reconnect_min_s, sync.reconnect_max_s))
        attempt += 1
    return None if stop.is_set() else broker


def full_jitter(attempt: int, base: float, cap: float) -> float:
    return random.uniform(0.0, min(cap, base * 2.0**attempt))


def run_connection(
    client: mqtt.Client,
    broker: BrokerConfig,
    sync: SyncConfig,
    stop: threading.Event,
    *,
    persistent_session: bool = False,
    on_error: ErrorSink | None = None,
) -> None:
    """Connect, serve until disconnected, back off with full jitter, repeat until ``stop``.
    ``on_error`` gets each failed connection attempt's exception."""
    attempt = 0
    while not stop.is_set():
        try:
            if broker.protocol == "5":
                props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
                props.SessionExpiryInterval = SESSION_EXPIRY_S if persistent_session else 0
                client.connect(
                    broker.host,
                    broker.port,
                    keepalive=broker.keepalive_s,
                    clean_start=not persistent_session,
                    properties=props,
                )
            else:
                client.connect(broker.host, broker.port, keepalive=broker.keepalive_s)
        except (OSError, ssl.SSLError) as exc:
            connect_failed(broker, exc, on_error)
        else:
            attempt = 0
            if stop.is_set():  # stopped while connecting: nobody will call disconnect() again
                client.disconnect()
                break
            client.loop_forever()  # returns on disconnect (reconnect_on_failure=False)
        if not stop.is_set():
            stop.wait(full_jitter(attempt, sync.reconnect_min_s, sync.reconnect_max_s))
            attempt += 1


def announce_offline(
    client: mqtt.Client, topic: str, payload: bytes, *, link: str, timeout: float = 2.0
) -> None:
    """Publish a link's retained offline status before it disconnects on purpose. Never
    raises: if the connection dropped meanwhile, the broker publishes the link's will instead."""
    info = client.publish(topic, payload, qos=1, retain=True)
    try:
        info.wait_for_publish(timeout=timeout)
    except (RuntimeError, ValueError) as exc:
        log.info("%s offline notice not sent (%s); the broker's will covers it", link, exc)
