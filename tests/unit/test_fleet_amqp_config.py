"""The RabbitMQ ingest's configuration and routing key <-> MQTT topic mapping (no server)."""

from __future__ import annotations

import pytest

from edgemed.errors import InputError
from edgemed.fleet.amqp import AmqpConfig, routing_key_to_topic, topic_to_routing_key
from edgemed.wire import parse_topic, topic


def test_urls_parse_and_credentials_are_refused() -> None:
    pytest.importorskip("pika")
    config = AmqpConfig.from_urls("amqp://a:5672, amqp://b:5672,")
    assert config.urls == ("amqp://a:5672", "amqp://b:5672")
    assert config.bindings == ("edgemed.v1.*.results", "edgemed.v1.*.status")
    assert config.replicas == 3 and config.exchange == "amq.topic"
    for bad in ("", "mqtt://a:1883", "amqp://user:secret@a:5672", "amqp://user@a:5672"):
        with pytest.raises(InputError) as info:
            AmqpConfig.from_urls(bad)
        assert "secret" not in str(info.value)


@pytest.mark.parametrize("device", ["bed-7", "icu_3-A", "bed.7"])
def test_topics_map_to_the_routing_keys_rabbitmq_uses_and_back(device: str) -> None:
    """RabbitMQ's MQTT plugin swaps '/' and '.': a '.' in a device id travels as '/'."""
    name = topic(device, "results")
    key = topic_to_routing_key(name)
    assert key == f"edgemed.v1.{device.replace('.', '/')}.results"
    assert routing_key_to_topic(key) == name
    assert parse_topic(routing_key_to_topic(key)) == (device, "results")
