"""Small frozen configuration objects (keyword-only) shared by the device and fleet sides."""

from __future__ import annotations

import logging
import os
import ssl
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal, NoReturn, TypeVar

__all__ = [
    "BrokerConfig",
    "ConfigFile",
    "OutboxConfig",
    "SyncConfig",
    "TlsConfig",
    "broker_config",
    "cache_dir",
    "check_broker_url",
    "load_config",
    "read_secret",
    "tls_context",
]

_N = TypeVar("_N", int, float)


def cache_dir() -> Path:
    """Where compiled engines live: ``$EDGEMED_CACHE_DIR``, else ``$XDG_CACHE_HOME/edgemed``.

    The root only: each runtime module (edgemed/backends) keeps its own folder below it and
    keys it as its engines need (``tensorrt/<model sha256>-<gpu>-trt<version>``, ``openvino``)."""
    if os.environ.get("EDGEMED_CACHE_DIR"):
        return Path(os.environ["EDGEMED_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "edgemed"


@dataclass(frozen=True, kw_only=True)
class TlsConfig:
    ca_file: Path  # the CA that signed the broker certificate (verification is never disabled)
    cert_file: Path | None = None  # client certificate for mutual TLS
    key_file: Path | None = None


@dataclass(frozen=True, kw_only=True)
class BrokerConfig:
    host: str = "127.0.0.1"
    port: int = 1883
    username: str | None = None
    password: str | None = None
    tls: TlsConfig | None = None
    # "auto": MQTT 5 where the broker supports it, else 3.1.1 (asked once per process start).
    protocol: Literal["auto", "3.1.1", "5"] = "auto"
    # paho pings after keepalive_s without traffic and drops the link keepalive_s later
    # without an answer: a half-open link (broker frozen, cable pulled) is noticed within
    # ~2 x 4 s + 1 s. The broker likewise fires a dead device's will after 1.5 x 4 s. A ping
    # every 4 s is ~2 bytes/s per device.
    keepalive_s: int = 4

    @classmethod
    def from_url(cls, url: str, *, tls: TlsConfig | None = None) -> BrokerConfig:
        """``mqtt://[user@]host[:port]`` (1883), or ``mqtts://`` (8883; needs ``tls``).

        A password in the URL is refused (see :func:`check_broker_url`): give it as
        ``password=``, read from a file or an environment variable."""
        from urllib.parse import urlsplit

        check_broker_url(url, "broker URL")
        parts = urlsplit(url if "://" in url else f"mqtt://{url}")
        secure = parts.scheme == "mqtts"
        if secure and tls is None:
            from .errors import InputError

            raise InputError(
                f"broker URL {url!r} is mqtts:// but no CA file is given: TLS needs the CA "
                "that signed the broker's certificate (--broker-ca, broker.tls.ca_file)"
            )
        return cls(
            host=parts.hostname or "",
            port=parts.port or (8883 if secure or tls is not None else 1883),
            username=parts.username,
            tls=tls,
        )


def check_broker_url(url: str, key: str) -> None:
    """Refuse a malformed broker URL, or one that carries a password, naming ``key``.

    Refused, not warned about: a password on a command line is readable by every local user
    (``ps``, ``/proc/<pid>/cmdline``), lands in shell history and in the logs of whatever
    started the process, and a URL is printed and logged freely. By the time a warning shows,
    the secret is out; refusing makes the fix (a file or a variable) happen before deployment.
    The message never repeats the password."""
    from urllib.parse import urlsplit

    from .errors import InputError

    parts = urlsplit(url if "://" in url else f"mqtt://{url}")
    try:
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        port_ok = False
    if parts.password is not None:
        raise InputError(
            f"{key}: the URL carries a password; URLs and command lines are visible to other "
            "local users and end up in logs. Put it in a file (--broker-password-file, "
            "broker.password_file) or $EDGEMED_BROKER_PASSWORD, the user name in the URL or "
            "--broker-username"
        )
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname or not port_ok:
        shown = f"{parts.scheme}://{parts.hostname or ''}" + (
            f":{parts.port}" if port_ok and parts.port else ""
        )
        raise InputError(
            f"{key}: must look like mqtt://host:port or mqtts://host:port, got {shown!r}"
        )
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise InputError(f"{key}: a broker URL has no path or query, got {url!r}")


def tls_context(tls: TlsConfig) -> ssl.SSLContext:
    """The one TLS client context every broker link uses (device publisher, fleet ingest and
    presence): only ``tls.ca_file`` is trusted (no system CAs), the broker's certificate must
    be valid now and name the host connected to, TLS 1.2 or later. Raises ssl.SSLError or
    OSError if a file cannot be read, is not PEM, or the key does not match the certificate."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(tls.ca_file))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = True  # the defaults, said aloud: verification is never off
    context.verify_mode = ssl.CERT_REQUIRED
    if tls.cert_file is not None:
        context.load_cert_chain(
            str(tls.cert_file), str(tls.key_file) if tls.key_file is not None else None
        )
    return context


@dataclass(frozen=True, kw_only=True)
class OutboxConfig:
    path: Path
    device_id: str
    max_bytes: int = 256 * 1024 * 1024
    max_age_s: float = 7 * 24 * 3600.0  # oldest unacknowledged result; then refuse new ones


@dataclass(frozen=True, kw_only=True)
class SyncConfig:
    inflight_window: int = 64  # results published and not yet acknowledged
    # Results already waiting when the sender wakes share one publish (JSON Lines, wire.py);
    # it never waits to fill a batch, so a quiet device still sends each result at once.
    max_batch_results: int = 32
    # Nagle's rule for results: while a message of fewer than max_batch_results awaits the
    # fleet's ack, newer rows that would make another such message wait (at most this long)
    # and then leave together. A quiet device has nothing outstanding and never waits.
    partial_hold_s: float = 0.02
    # Acknowledged rows are deleted in one transaction once this many are acknowledged or
    # this long after the first (sync/pacing.py): each deletion holds the outbox lock.
    ack_delete_rows: int = 256
    ack_delete_s: float = 0.05
    resend_initial_s: float = 5.0  # first resend of an unacknowledged result
    resend_max_s: float = 120.0  # resend back-off cap
    reconnect_min_s: float = 0.5  # full-jitter reconnect back-off: uniform(0, min(max, min*2^n))
    reconnect_max_s: float = 60.0
    # The device re-announces its status this often; the fleet shows a device "unknown" once
    # it has been silent for 1.5 x this (its last will may have been lost with the broker).
    heartbeat_s: float = 30.0
    # A fleet process coming online makes devices replay their backlog after uniform(0, this)
    # seconds: at once, but a ward of devices does not arrive in one burst.
    fleet_replay_jitter_s: float = 2.0


# -- the configuration file (TOML): docs/deployment.md "The configuration file" ---------------

PASSWORD_ENV = "EDGEMED_BROKER_PASSWORD"  # what `fleet serve` reads when no file is given
_TABLES: dict[str, tuple[str, ...]] = {
    "": ("broker", "outbox", "device", "trust"),
    "broker": (
        "url",
        "username",
        "password_file",
        "password_env",
        "protocol",
        "keepalive_s",
        "tls",
    ),
    "broker.tls": ("ca_file", "cert_file", "key_file"),
    "outbox": ("path", "max_bytes", "max_age_s"),
    "device": ("id",),
    "trust": ("policy",),
}


@dataclass(frozen=True, kw_only=True)
class ConfigFile:
    """What :func:`load_config` read: the existing config objects, None for absent tables."""

    path: Path
    broker: BrokerConfig | None = None
    outbox: OutboxConfig | None = None  # needs [device] id
    device_id: str | None = None
    trust_policy: Path | None = None  # the device's trust policy (docs/signing.md)


def load_config(path: str | os.PathLike[str]) -> ConfigFile:
    """Read and check an edgemed TOML configuration file (device or fleet).

    Every error is an InputError naming the file and the key (``broker.tls.ca_file: no such
    file: …``); unknown keys are refused (a mistyped ``ca_fle`` must not silently mean "no
    TLS"). Relative paths are taken from the file's folder. TLS files are opened and checked
    now (CA readable, key matching the certificate), so a bad file fails here, not at the
    first connection. Secrets never live in the file itself: ``password_file`` or
    ``password_env``."""
    import sys

    from .errors import InputError

    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - the backport, a dependency on 3.10 only
        import tomli as tomllib
    source = Path(path)
    try:
        with source.open("rb") as f:
            data: dict[str, Any] = tomllib.load(f)
    except FileNotFoundError:
        raise InputError(f"{source}: no such configuration file") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{source}: not valid TOML: {exc}") from None
    reader = _Reader(source, data)
    device_id = reader.text("device.id")
    if device_id is not None and (not device_id or any(c in device_id for c in "/+#\0")):
        reader.fail("device.id", f"must be non-empty without / + # (got {device_id!r})")
    outbox = None
    if reader.table("outbox") is not None:
        if device_id is None:
            reader.fail("device.id", "required by [outbox]")
        outbox = OutboxConfig(
            path=reader.required_path("outbox.path", must_exist=False),
            device_id=device_id,
            max_bytes=reader.number("outbox.max_bytes", int, OutboxConfig.max_bytes),
            max_age_s=reader.number("outbox.max_age_s", float, OutboxConfig.max_age_s),
        )
    broker = _broker(reader) if reader.table("broker") is not None else None
    return ConfigFile(
        path=source,
        broker=broker,
        outbox=outbox,
        device_id=device_id,
        trust_policy=reader.path("trust.policy"),
    )


def broker_config(
    *,
    url: str,
    tls: TlsConfig | None,
    username: str | None = None,
    password: str | None = None,
    protocol: str = "auto",
    keepalive_s: int = 4,
    names: dict[str, str],
) -> BrokerConfig:
    """A BrokerConfig from parts, checked; ``names`` maps "url", "tls", "ca", "username" and
    "protocol" to how the caller's user spells them (a config key or a command-line option),
    for the messages."""
    from .errors import InputError

    check_broker_url(url, names["url"])
    if tls is None and url.startswith("mqtts://"):
        raise InputError(
            f"{names['url']}: mqtts:// but no CA file is given: TLS needs the CA that signed "
            f"the broker's certificate ({names['ca']})"
        )
    if tls is not None:
        try:
            tls_context(tls)
        except (OSError, ssl.SSLError) as exc:
            raise InputError(f"{names['tls']}: cannot use these TLS files: {exc}") from None
        if tls.cert_file is not None:
            _check_validity(tls.cert_file, names["tls"])
    broker = BrokerConfig.from_url(url, tls=tls)
    if username is not None and broker.username is not None:
        raise InputError(f"{names['username']}: the URL names a user already")
    if password is not None and (username or broker.username) is None:
        raise InputError(f"{names['username']}: a password needs a user name")
    if protocol not in ("auto", "3.1.1", "5"):
        raise InputError(f"{names['protocol']}: must be auto, 3.1.1 or 5, got {protocol!r}")
    return replace(
        broker,
        username=username if username is not None else broker.username,
        password=password,
        protocol=protocol,  # type: ignore[arg-type]
        keepalive_s=keepalive_s,
    )


def _check_validity(cert_file: Path, key: str) -> None:
    """Refuse a client certificate outside its validity dates now, with its dates, rather than
    leave the broker to drop every connection without a word; warn 14 days ahead."""
    import datetime as dt

    from cryptography import x509

    from .errors import InputError

    cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    now = dt.datetime.now(dt.timezone.utc)
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    if not start <= now <= end:
        state = f"expired on {end:%Y-%m-%d %H:%M} UTC" if now > end else f"valid only from {start}"
        raise InputError(f"{key}: the client certificate {cert_file} is {state}")
    if end - now < dt.timedelta(days=14):
        logging.getLogger(__name__).warning(
            "%s: the client certificate %s expires on %s: renew it", key, cert_file, end
        )


def read_secret(path: Path, key: str) -> str:
    """A password file's first line; refused if missing or empty, named by ``key``."""
    from .errors import InputError

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"{key}: cannot read {path}: {exc.strerror or exc}") from None
    secret = text.splitlines()[0] if text.strip() else ""
    if not secret:
        raise InputError(f"{key}: {path} is empty")
    if path.stat().st_mode & 0o077:
        logging.getLogger(__name__).warning(
            "%s: %s is readable by other users (chmod 600 it)", key, path
        )
    return secret


def _broker(reader: _Reader) -> BrokerConfig:
    tls = None
    if reader.table("broker.tls") is not None:
        ca = reader.required_path("broker.tls.ca_file")
        cert, key = reader.path("broker.tls.cert_file"), reader.path("broker.tls.key_file")
        if (cert is None) != (key is None):
            reader.fail("broker.tls.key_file" if key is None else "broker.tls.cert_file",
                        "cert_file and key_file go together (mutual TLS)")  # fmt: skip
        tls = TlsConfig(ca_file=ca, cert_file=cert, key_file=key)
    password = None
    password_file = reader.path("broker.password_file")
    password_env = reader.text("broker.password_env")
    if password_file is not None and password_env is not None:
        reader.fail("broker.password_env", "give password_file or password_env, not both")
    if password_file is not None:
        password = read_secret(password_file, reader.key("broker.password_file"))
    elif password_env is not None:
        password = os.environ.get(password_env) or None
        if password is None:
            reader.fail("broker.password_env", f"${password_env} is not set or empty")
    url = reader.required_text("broker.url")
    names = {
        k: reader.key(f"broker.{k}") for k in ("url", "tls", "username", "protocol")
    }  # fmt: skip
    names["ca"] = "broker.tls.ca_file"
    return broker_config(
        url=url,
        tls=tls,
        username=reader.text("broker.username"),
        password=password,
        protocol=reader.text("broker.protocol") or "auto",
        keepalive_s=reader.number("broker.keepalive_s", int, BrokerConfig.keepalive_s),
        names=names,
    )


class _Reader:
    """Typed access to the parsed TOML by dotted key, with errors naming file and key."""

    def __init__(self, source: Path, data: dict[str, Any]) -> None:
        self.source = source
        self.data = data
        for table, keys in _TABLES.items():
            found = self.table(table) if table else data
            for key in found or {}:
                if key not in keys:
                    where = f"{table}.{key}" if table else key
                    self.fail(where, f"unknown key (expected one of: {', '.join(keys)})")

    def key(self, dotted: str) -> str:
        return f"{self.source}: {dotted}"

    def fail(self, dotted: str, problem: str) -> NoReturn:
        from .errors import InputError

        raise InputError(f"{self.key(dotted)}: {problem}")

    def _get(self, dotted: str) -> Any:
        node: Any = self.data
        for i, part in enumerate(dotted.split(".")):
            if node is None:
                return None
            if not isinstance(node, dict):
                self.fail(".".join(dotted.split(".")[:i]), "must be a table")
            node = node.get(part)
        return node

    def table(self, dotted: str) -> dict[str, Any] | None:
        value = self._get(dotted)
        if value is not None and not isinstance(value, dict):
            self.fail(dotted, f"must be a table ([{dotted}]), got {type(value).__name__}")
        return value

    def required_text(self, dotted: str) -> str:
        value = self.text(dotted)
        if value is None:
            self.fail(dotted, "required")
        return value

    def required_path(self, dotted: str, *, must_exist: bool = True) -> Path:
        self.required_text(dotted)
        found = self.path(dotted, must_exist=must_exist)
        assert found is not None
        return found

    def text(self, dotted: str) -> str | None:
        value = self._get(dotted)
        if value is not None and not isinstance(value, str):
            self.fail(dotted, f"must be a string, got {type(value).__name__}")
        return value

    def number(self, dotted: str, kind: type[_N], default: _N) -> _N:
        value = self._get(dotted)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, (int, float) if kind is float else int):
            self.fail(
                dotted, f"must be {'a number' if kind is float else 'an integer'}, got {value!r}"
            )
        if value <= 0:
            self.fail(dotted, f"must be positive, got {value!r}")
        return kind(value)

    def path(self, dotted: str, *, must_exist: bool = True) -> Path | None:
        value = self.text(dotted)
        if value is None:
            return None
        found = Path(value).expanduser()
        found = found if found.is_absolute() else self.source.parent / found
        if must_exist and not found.is_file():
            self.fail(dotted, f"no such file: {found}")
        return found
