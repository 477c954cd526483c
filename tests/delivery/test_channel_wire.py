"""The channel's wire: a grant the control plane writes parses back; anything else is refused."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from fleet_common.wire import paths
from fleet_common.wire.answers import AnswerError, parse_enroll_answer
from fleet_common.wire.channel import (
    TOPIC_PREFIX,
    ChannelError,
    ChannelGrant,
    ChannelRequest,
    desired_topic,
    parse_channel_grant,
    parse_channel_request,
)
from fleet_common.wire.reports import ReportError

DEVICE = "0b8e4f0e-3c1a-4d55-9c38-2a8a1b0d6e11"
CERT = "-----BEGIN CERTIFICATE-----\nMIIBAAAA\n-----END CERTIFICATE-----\n"
CSR = "-----BEGIN CERTIFICATE REQUEST-----\nMIIBAAAA\n-----END CERTIFICATE REQUEST-----\n"
GRANT = ChannelGrant(
    broker_url="mqtts://broker.fleet.example:8883",
    topic=desired_topic(DEVICE),
    certificate=CERT,
    expires_at=datetime(2027, 2, 21, 12, 0, tzinfo=UTC),
)


def grant_body(**changes: object) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(json.dumps(GRANT.to_json()))
    return {**body, **changes}


def test_a_grant_the_control_plane_writes_parses_back_to_the_same_values():
    assert parse_channel_grant(grant_body()) == GRANT
    assert (GRANT.host, GRANT.port) == ("broker.fleet.example", 8883)


def test_the_expiry_is_written_in_utc_with_a_z():
    assert grant_body()["expires_at"] == "2027-02-21T12:00:00Z"


def test_a_device_topic_sits_under_the_fleet_prefix():
    assert desired_topic(DEVICE) == f"{TOPIC_PREFIX}/{DEVICE}/desired"
    assert TOPIC_PREFIX == "pi-fleet/devices"
    assert paths.CHANNEL == "/api/v1/channel"


@pytest.mark.parametrize("device_id", ["", "a/b", "+", "#", "x" * 129])
def test_a_topic_is_never_made_for_a_wildcard_or_a_path(device_id):
    with pytest.raises(ValueError, match="not a device id for a topic"):
        desired_topic(device_id)


def test_an_ipv6_broker_is_accepted():
    assert parse_channel_grant(grant_body(broker_url="mqtts://[::1]:8883")).host == "::1"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"broker_url": "mqtt://broker:1883"}, "broker_url must be mqtts:// (TLS), not mqtt://"),
        ({"broker_url": "https://broker:8883"}, "broker_url must be mqtts://"),
        ({"broker_url": "broker:8883"}, "broker_url must be mqtts://"),
        ({"broker_url": "mqtts://:8883"}, "broker_url has no usable host"),
        ({"broker_url": "mqtts://user:pw@broker:8883"}, "broker_url has no usable host"),
        ({"broker_url": "mqtts://bro ker:8883"}, "broker_url has no usable host"),
        ({"broker_url": "mqtts://broker"}, "broker_url must name a port"),
        ({"broker_url": "mqtts://broker:0"}, "broker_url must name a port"),
        ({"broker_url": "mqtts://broker:99999"}, "broker_url is not a URL"),
        ({"broker_url": "mqtts://broker:8883/x"}, "broker_url must be mqtts://host:port only"),
        ({"broker_url": "mqtts://broker:8883?q=1"}, "broker_url must be mqtts://host:port only"),
        ({"broker_url": "mqtts://b" + "x" * 600 + ":1"}, "broker_url is longer than 512"),
        ({"broker_url": 8883}, "broker_url must be a non-empty string"),
        ({"topic": "pi-fleet/devices/#"}, "topic must be pi-fleet/devices/<device id>/desired"),
        ({"topic": "pi-fleet/devices/+/desired"}, "topic must be pi-fleet/devices/"),
        ({"topic": "other/x/desired"}, "topic must be pi-fleet/devices/"),
        ({"topic": None}, "topic must be a non-empty string"),
        ({"certificate": CSR}, "certificate must be PEM CERTIFICATE blocks"),
        ({"certificate": "not pem"}, "certificate must be PEM CERTIFICATE blocks"),
        ({"certificate": CERT * 400}, "certificate is longer than 16384"),
        ({"expires_at": "tomorrow"}, "expires_at is not an ISO 8601 time"),
        ({"expires_at": "2027-02-21T12:00:00"}, "expires_at has no time zone"),
        ({"expires_at": 1.8e9}, "expires_at must be a non-empty string"),
    ],
)
def test_a_malformed_grant_is_refused_naming_the_field(changes, message):
    with pytest.raises(ChannelError) as refused:
        parse_channel_grant(grant_body(**changes))

    assert str(refused.value).startswith(message)


@pytest.mark.parametrize("body", [[], "grant", None, 7])
def test_a_grant_must_be_an_object(body):
    with pytest.raises(ChannelError, match="the channel must be a JSON object"):
        parse_channel_grant(body)


def test_a_chain_of_certificates_is_accepted():
    assert parse_channel_grant(grant_body(certificate=CERT + CERT)).certificate == CERT + CERT


def test_an_enroll_answer_may_carry_a_channel():
    answer = {"device_id": DEVICE, "device_token": "tok", "channel": grant_body()}

    assert parse_enroll_answer(answer).channel == GRANT
    assert parse_enroll_answer({**answer, "channel": None}).channel is None


def test_a_bad_channel_in_an_enroll_answer_is_named():
    answer = {"device_id": DEVICE, "device_token": "tok", "channel": grant_body(topic="x")}

    with pytest.raises(AnswerError, match=r"^channel: topic must be"):
        parse_enroll_answer(answer)


def test_a_channel_request_parses_back():
    assert parse_channel_request(ChannelRequest(CSR).to_json()) == ChannelRequest(CSR)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([], "the body must be a JSON object"),
        ({}, "csr must be a PEM certificate request"),
        ({"csr": CERT}, "csr is not a PEM CERTIFICATE REQUEST block"),
        ({"csr": CSR + "trailing"}, "csr is not a PEM CERTIFICATE REQUEST block"),
        ({"csr": CSR.replace("MIIBAAAA", "MII<script>")}, "csr is not a PEM CERTIFICATE"),
        ({"csr": "A" * 5000}, "csr is longer than 4096 bytes"),
    ],
)
def test_a_malformed_channel_request_is_refused_naming_the_field(body, message):
    with pytest.raises(ReportError) as refused:
        parse_channel_request(body)

    assert str(refused.value).startswith(message)
