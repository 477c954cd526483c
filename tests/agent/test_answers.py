"""Each control-plane answer has one parser; a bad field is named, with its value."""

from __future__ import annotations

import re

import pytest

from fleet_common.wire.answers import (
    MAX_PROBLEM_CHARS,
    AnswerError,
    RejectedReadings,
    parse_enroll_answer,
    parse_heartbeat_answer,
)

GOOD = {"device_id": "42", "device_token": "tok-abc_123", "heartbeat_interval_s": 10}


def test_a_good_enrollment_answer_parses_into_typed_fields():
    answer = parse_enroll_answer(GOOD)

    assert (answer.device_id, answer.device_token, answer.heartbeat_interval_s) == (
        "42",
        "tok-abc_123",
        10.0,
    )


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [
        ("device_id", None, "device_id must be a non-empty string, not None"),
        ("device_id", 42, "device_id must be a non-empty string, not 42"),
        ("device_token", "", "device_token must be a non-empty string, not ''"),
        ("device_token", "a\r\nX-Evil: 1", "device_token has characters outside"),
        ("device_token", "t" * 513, "device_token is longer than 512 characters"),
        ("heartbeat_interval_s", True, "heartbeat_interval_s must be a finite number, not True"),
    ],
)
def test_an_enrollment_answer_with_a_bad_field_is_refused_naming_it(field, value, named):
    with pytest.raises(AnswerError, match=re.escape(named)):
        parse_enroll_answer({**GOOD, field: value})


@pytest.mark.parametrize(
    ("value", "clamped"), [(0, 1.0), (-3, 1.0), (2.5, 2.5), (1e308, 3600.0), (10**400, 3600.0)]
)
def test_a_finite_heartbeat_interval_is_clamped_to_one_second_to_an_hour(value, clamped):
    assert parse_heartbeat_answer({"heartbeat_interval_s": value}).heartbeat_interval_s == clamped


@pytest.mark.parametrize("value", ["abc", float("nan"), float("inf"), [], {}])
def test_a_heartbeat_interval_that_is_not_a_finite_number_is_refused(value):
    with pytest.raises(AnswerError, match="heartbeat_interval_s must be a finite number"):
        parse_heartbeat_answer({"heartbeat_interval_s": value})


def test_an_absent_heartbeat_interval_means_keep_the_current_one():
    assert parse_heartbeat_answer({"desired": None}).heartbeat_interval_s is None


@pytest.mark.parametrize("value", ["envelope", 7, ["a"]])
def test_a_desired_state_that_is_not_an_object_or_null_is_refused(value):
    with pytest.raises(AnswerError, match="desired must be an object or null"):
        parse_heartbeat_answer({"desired": value})


def test_an_answer_without_desired_means_the_device_is_current():
    answer = parse_heartbeat_answer({"heartbeat_interval_s": 10.0})

    assert (answer.desired, answer.rejected_readings) == (None, None)


def test_rejected_readings_are_parsed_with_their_problem():
    answer = parse_heartbeat_answer(
        {"rejected_readings": {"count": 3, "problem": "readings[0].taken_at is in the future"}}
    )

    assert answer.rejected_readings == RejectedReadings(3, "readings[0].taken_at is in the future")


def test_a_long_rejection_problem_is_cut_not_refused():
    answer = parse_heartbeat_answer({"rejected_readings": {"count": 1, "problem": "p" * 9000}})

    assert answer.rejected_readings is not None
    assert len(answer.rejected_readings.problem) == MAX_PROBLEM_CHARS


@pytest.mark.parametrize(
    ("value", "named"),
    [
        ("3", "rejected_readings must be an object or null"),
        ({"count": -1}, "rejected_readings.count must be a count"),
        ({"count": True}, "rejected_readings.count must be a count"),
        ({"count": 1, "problem": 7}, "rejected_readings.problem must be a string"),
    ],
)
def test_malformed_rejected_readings_are_refused_naming_the_field(value, named):
    with pytest.raises(AnswerError, match=re.escape(named)):
        parse_heartbeat_answer({"rejected_readings": value})
