"""Notices: a few bytes that say "desired state N is ready"; anything else is refused by name."""

from __future__ import annotations

import pytest

from fleet_common.wire.notices import MAX_NOTICE_BYTES, Notice, NoticeError, parse_notice


def test_a_notice_is_compact_json_that_parses_back():
    assert Notice(42).to_bytes() == b'{"desired_sequence":42}'
    assert parse_notice(Notice(42).to_bytes()) == Notice(42)


def test_unknown_keys_are_ignored_so_the_notice_can_grow():
    assert parse_notice(b'{"desired_sequence": 3, "hint": "x"}') == Notice(3)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"", "notice is not JSON"),
        (b"\xff\xfe", "notice is not JSON"),
        (b"{", "notice is not JSON"),
        (b"[" * 200, "notice is not JSON"),
        (b"[7]", "notice must be a JSON object"),
        (b"7", "notice must be a JSON object"),
        (b"{}", "desired_sequence must be an integer from 0 below"),
        (b'{"desired_sequence": -1}', "desired_sequence must be an integer"),
        (b'{"desired_sequence": 1.5}', "desired_sequence must be an integer"),
        (b'{"desired_sequence": "7"}', "desired_sequence must be an integer"),
        (b'{"desired_sequence": true}', "desired_sequence must be an integer"),
        (b'{"desired_sequence": 9007199254740992}', "desired_sequence must be an integer"),
        (b'{"desired_sequence": 1}' + b" " * MAX_NOTICE_BYTES, "notice is 279 bytes; at most 256"),
    ],
)
def test_a_payload_that_is_not_a_notice_is_refused_naming_the_problem(payload, message):
    with pytest.raises(NoticeError) as refused:
        parse_notice(payload)

    assert str(refused.value).startswith(message)


@pytest.mark.parametrize("sequence", [-1, 2**53, True])
def test_a_notice_is_never_built_with_a_bad_sequence(sequence):
    with pytest.raises(ValueError, match="a notice's sequence is an integer"):
        Notice(sequence)
