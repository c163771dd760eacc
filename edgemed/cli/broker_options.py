"""Broker options a command shares (``fleet serve`` today): where the broker is, its TLS files
and credentials, or all of it from a configuration file's ``[broker]`` table.

Secrets never come from the command line: a URL with a password is refused
(config.check_broker_url says why), the password is read from ``--broker-password-file`` or
``$EDGEMED_BROKER_PASSWORD``. TLS files are checked before anything connects.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from ..config import PASSWORD_ENV, BrokerConfig, TlsConfig, broker_config, load_config, read_secret
from ..errors import InputError

__all__ = ["DEFAULT_BROKER", "add_broker_options", "broker_from_args"]

DEFAULT_BROKER = "mqtt://127.0.0.1:1883"
_FILES = {"broker_ca": "--broker-ca", "broker_cert": "--broker-cert", "broker_key": "--broker-key"}
_OPTIONS = ("broker", *_FILES, "broker_username", "broker_password_file")


def add_broker_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "broker",
        f"the MQTT broker; TLS when --broker-ca is given (or the URL is mqtts://), never "
        f"falling back to plain MQTT. Password from --broker-password-file or ${PASSWORD_ENV}, "
        "never in the URL",
    )
    group.add_argument(
        "--broker",
        metavar="URL",
        default=None,
        help=f"mqtt[s]://[user@]host[:port] ({DEFAULT_BROKER})",
    )
    group.add_argument("--broker-ca", metavar="FILE", type=Path, help="CA that signed the broker")
    group.add_argument("--broker-cert", metavar="FILE", type=Path, help="client certificate (mTLS)")
    group.add_argument("--broker-key", metavar="FILE", type=Path, help="its private key")
    group.add_argument("--broker-username", metavar="NAME", default=None)
    group.add_argument(
        "--broker-password-file", metavar="FILE", type=Path, help="the password, first line"
    )
    group.add_argument(
        "--config",
        metavar="FILE",
        type=Path,
        default=None,
        help="an edgemed TOML configuration file: the broker from its [broker] table "
        "(docs/deployment.md); not with the options above",
    )


def broker_from_args(args: argparse.Namespace) -> BrokerConfig:
    """The BrokerConfig the options (or ``--config``) describe, checked; InputError naming the
    option or key otherwise."""
    given = [o for o in _OPTIONS if getattr(args, o) is not None]
    if args.config is not None:
        if given:
            options = ", ".join("--" + o.replace("_", "-") for o in given)
            raise InputError(f"--config gives the broker ([broker]): drop {options}")
        broker = load_config(args.config).broker
        if broker is None:
            raise InputError(f"{args.config}: broker: a [broker] table is required")
        return broker
    for option, flag in _FILES.items():
        path = getattr(args, option)
        if path is not None and not path.is_file():
            raise InputError(f"{flag}: no such file: {path}")
    if (args.broker_cert is None) != (args.broker_key is None):
        raise InputError("--broker-cert and --broker-key go together (mutual TLS)")
    if args.broker_cert is not None and args.broker_ca is None:
        raise InputError("--broker-cert needs --broker-ca (the CA that signed the broker)")
    tls = None
    if args.broker_ca is not None:
        tls = TlsConfig(
            ca_file=args.broker_ca, cert_file=args.broker_cert, key_file=args.broker_key
        )
    password: str | None = None
    if args.broker_password_file is not None:
        password = read_secret(args.broker_password_file, "--broker-password-file")
    else:
        password = os.environ.get(PASSWORD_ENV) or None
    return broker_config(
        url=args.broker or DEFAULT_BROKER,
        tls=tls,
        username=args.broker_username,
        password=password,
        names={
            "url": "--broker",
            "tls": "--broker-ca/--broker-cert/--broker-key",
            "ca": "--broker-ca",
            "username": "--broker-username",
            "protocol": "protocol",
        },
    )
