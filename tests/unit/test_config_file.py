"""The TOML configuration file (edgemed.config.load_config) and the fleet's broker options:
the documented example parses into the existing config objects, and every error names its key
(or option). Real TLS connections driven by these files: tests/integration/test_fleet_tls.py."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pki import CertificateAuthority

import edgemed.sync
from edgemed.cli.broker_options import broker_from_args
from edgemed.cli.commands import _parser
from edgemed.config import BrokerConfig, TlsConfig, load_config
from edgemed.errors import InputError

DOCS = Path(__file__).resolve().parents[2] / "docs" / "deployment.md"


@pytest.fixture(scope="module")
def etc(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder laid out like the documented example's /etc/edgemed."""
    folder = tmp_path_factory.mktemp("etc-edgemed")
    ca = CertificateAuthority(folder, "ca")
    device = ca.issue("bed-12")
    device.cert.rename(folder / "bed-12.crt")
    device.key.rename(folder / "bed-12.key")
    (folder / "broker-password").write_text("correct horse\n")
    (folder / "broker-password").chmod(0o600)
    (folder / "trust.json").write_text("{}")
    (folder / "expired").mkdir()
    expired = ca.issue("old", expired=True)
    expired.cert.rename(folder / "expired" / "old.crt")
    expired.key.rename(folder / "expired" / "old.key")
    return folder


def _documented_example() -> str:
    if not DOCS.is_file():
        pytest.skip("docs/ is not shipped in the wheel; checked in the source tree")
    text = DOCS.read_text()
    found = re.search(r"## The configuration file.*?```toml\n(.*?)```", text, re.S)
    assert found, "docs/deployment.md has no TOML example under 'The configuration file'"
    return found.group(1)


def _write(folder: Path, text: str, name: str = "edgemed.toml") -> Path:
    path = folder / name
    path.write_text(text)
    return path


def test_the_documented_example_gives_the_config_objects(etc: Path, tmp_path: Path) -> None:
    text = _documented_example().replace("/etc/edgemed/", f"{etc}/")
    text = text.replace("/var/lib/edgemed/", f"{tmp_path}/")
    config = edgemed.sync.load_config(_write(tmp_path, text))  # the same function, re-exported
    assert config.device_id == "bed-12"
    assert config.broker == BrokerConfig(
        host="broker.ward3.example",
        port=8883,
        username="bed-12",
        password="correct horse",
        tls=TlsConfig(
            ca_file=etc / "ca.crt", cert_file=etc / "bed-12.crt", key_file=etc / "bed-12.key"
        ),
    )
    assert config.outbox is not None and config.outbox.device_id == "bed-12"
    assert config.outbox.path == tmp_path / "outbox.db"
    assert (config.outbox.max_bytes, config.outbox.max_age_s) == (512 * 1024 * 1024, 14 * 86400.0)
    assert config.trust_policy == etc / "trust.json"


def test_relative_paths_are_taken_from_the_file_s_folder(etc: Path) -> None:
    config = load_config(
        _write(
            etc,
            '[broker]\nurl = "mqtt://127.0.0.1:1884"\n[broker.tls]\nca_file = "ca.crt"\n'
            'cert_file = "bed-12.crt"\nkey_file = "bed-12.key"\n',
            "relative.toml",
        )
    )
    assert config.broker is not None and config.broker.tls is not None
    assert config.broker.tls.ca_file == etc / "ca.crt" and config.broker.port == 1884
    assert config.outbox is None and config.trust_policy is None


TLS = '[broker.tls]\nca_file = "ca.crt"\ncert_file = "bed-12.crt"\nkey_file = "bed-12.key"\n'


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[broker]\nurl = "mqtts://h"\n[broker.tls]\nca_file = "none.crt"\n',
         "broker.tls.ca_file: no such file: "),
        ('[broker]\nurl = "mqtts://h"\n[broker.tls]\nca_fle = "ca.crt"\n',
         "broker.tls.ca_fle: unknown key (expected one of: ca_file, cert_file, key_file)"),
        ('[broker]\nurl = "mqtts://h"\n[broker.tls]\nca_file = "ca.crt"\ncert_file = "bed-12.crt"\n',
         "broker.tls.key_file: cert_file and key_file go together"),
        ('[broker]\nurl = "mqtts://h"\n[broker.tls]\nca_file = "ca.crt"\ncert_file = "bed-12.crt"\n'
         'key_file = "expired/old.key"\n', "broker.tls: cannot use these TLS files"),
        ('[broker]\nurl = "mqtts://h"\n[broker.tls]\nca_file = "ca.crt"\n'
         'cert_file = "expired/old.crt"\nkey_file = "expired/old.key"\n',
         "broker.tls: the client certificate"),
        ('[broker]\nurl = "mqtts://h"\n', "mqtts:// but no CA file is given"),
        ('[broker]\nurl = "mqtt://bed:hunter2@h"\n', "broker.url: the URL carries a password"),
        ('[broker]\nurl = "http://h"\n', "broker.url: must look like mqtt://host:port"),
        ("[broker]\nusername = \"x\"\n", "broker.url: required"),
        ('[broker]\nurl = "mqtt://h"\nkeepalive_s = "4"\n', "broker.keepalive_s: must be an integer"),
        ('[broker]\nurl = "mqtt://h"\nprotocol = "4"\n', "broker.protocol: must be auto, 3.1.1 or 5"),
        ('[broker]\nurl = "mqtt://h"\npassword_file = "broker-password"\n',
         "broker.username: a password needs a user name"),
        ('[broker]\nurl = "mqtt://h"\nusername = "u"\npassword_env = "EDGEMED_TEST_UNSET_PW"\n',
         "broker.password_env: $EDGEMED_TEST_UNSET_PW is not set"),
        ('[broker]\nurl = "mqtt://h"\npassword = "x"\n', "broker.password: unknown key"),
        ('[outbox]\npath = "o.db"\n', "device.id: required by [outbox]"),
        ('[device]\nid = "bed-12"\n[outbox]\npath = "o.db"\nmax_bytes = -1\n',
         "outbox.max_bytes: must be positive"),
        ('[device]\nid = "bed/12"\n', "device.id: must be non-empty without / + #"),
        ('[trust]\npolicy = "none.json"\n', "trust.policy: no such file"),
        ("broker = 3\n", "broker: must be a table"),
        ("[brokr]\n", "brokr: unknown key"),
        ("[broker\n", "not valid TOML"),
    ],
)  # fmt: skip
def test_errors_name_the_key(etc: Path, text: str, message: str) -> None:
    path = _write(etc, text, "bad.toml")
    with pytest.raises(InputError) as caught:
        load_config(path)
    assert str(caught.value).startswith(f"{path}: "), caught.value
    assert message in str(caught.value), caught.value
    assert "hunter2" not in str(caught.value)


def test_a_missing_file_and_a_password_file_and_variable(
    etc: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(InputError, match="no such configuration file"):
        load_config(etc / "absent.toml")
    monkeypatch.setenv("EDGEMED_TEST_PW", "from the environment")
    text = '[broker]\nurl = "mqtt://h"\nusername = "u"\npassword_env = "EDGEMED_TEST_PW"\n'
    broker = load_config(_write(etc, text, "env.toml")).broker
    assert broker is not None and broker.password == "from the environment"
    (etc / "empty-password").write_text("\n")
    text = '[broker]\nurl = "mqtt://h"\nusername = "u"\npassword_file = "empty-password"\n'
    with pytest.raises(InputError, match=r"broker\.password_file: .* is empty"):
        load_config(_write(etc, text, "empty.toml"))


def _serve_args(*args: str) -> BrokerConfig:
    return broker_from_args(_parser().parse_args(["fleet", "serve", *args]))


def test_fleet_serve_broker_options(etc: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EDGEMED_BROKER_PASSWORD", raising=False)
    assert _serve_args() == BrokerConfig()  # mqtt://127.0.0.1:1883, as before
    files = ["--broker-ca", str(etc / "ca.crt"), "--broker-cert", str(etc / "bed-12.crt")]
    files += ["--broker-key", str(etc / "bed-12.key")]
    broker = _serve_args("--broker", "mqtts://b.example", *files, "--broker-username", "fleet",
                         "--broker-password-file", str(etc / "broker-password"))  # fmt: skip
    assert (broker.host, broker.port, broker.username, broker.password) == (
        "b.example", 8883, "fleet", "correct horse"
    )  # fmt: skip
    assert broker.tls == TlsConfig(
        ca_file=etc / "ca.crt", cert_file=etc / "bed-12.crt", key_file=etc / "bed-12.key"
    )
    monkeypatch.setenv("EDGEMED_BROKER_PASSWORD", "from env")
    assert _serve_args("--broker", "mqtt://fleet@h:1").password == "from env"
    config = _write(etc, f'[broker]\nurl = "mqtts://b.example:8884"\n{TLS}', "fleet.toml")
    assert _serve_args("--config", str(config)).port == 8884
    refused = {
        ("--broker", "mqtt://fleet:s3cret@h"): "--broker: the URL carries a password",
        ("--broker-ca", str(etc / "none.crt")): "--broker-ca: no such file",
        ("--broker-cert", str(etc / "bed-12.crt")): "--broker-cert and --broker-key go together",
        ("--config", str(config), "--broker", "mqtt://h"): "--config gives the broker",
        ("--broker", "mqtts://h"): "no CA file is given",
    }
    for args, message in refused.items():
        with pytest.raises(InputError, match=re.escape(message)) as caught:
            _serve_args(*args)
        assert "s3cret" not in str(caught.value)
