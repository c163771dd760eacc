"""The JetStream ingest's configuration and NATS subject <-> MQTT topic mapping (no server)."""

from __future__ import annotations

import pytest

from edgemed.errors import InputError
from edgemed.fleet.jetstream import JetStreamConfig, subject_to_topic, topic_to_subject
from edgemed.wire import parse_topic, topic


def test_urls_parse_and_secrets_are_refused() -> None:
    pytest.importorskip("nats")
    config = JetStreamConfig.from_urls("nats://a:4222, nats://b:4222,")
    assert config.servers == ("nats://a:4222", "nats://b:4222")
    assert config.subjects == ("edgemed.v1.*.results", "edgemed.v1.*.status")
    assert config.replicas == 3
    for bad in ("", "mqtt://a:1883", "nats://user:secret@a:4222"):
        with pytest.raises(InputError) as info:
            JetStreamConfig.from_urls(bad)
        assert "secret" not in str(info.value)


@pytest.mark.parametrize("device", ["bed-7", "icu_3-A"])
def test_topics_map_to_the_subjects_nats_uses_and_back(device: str) -> None:
    name = topic(device, "results")
    assert topic_to_subject(name) == f"edgemed.v1.{device}.results"
    assert subject_to_topic(topic_to_subject(name)) == name


@pytest.mark.parametrize("escaped", ["bed//7", "bed/7"])  # nats-server 2.11+, 2.10
def test_a_dot_in_a_device_id_comes_back_from_either_escape(escaped: str) -> None:
    assert parse_topic(subject_to_topic(f"edgemed.v1.{escaped}.ack")) == ("bed.7", "ack")
