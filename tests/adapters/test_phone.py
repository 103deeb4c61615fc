"""Phone numbers and SMS bodies: strict E.164, segment counting and body checks."""

from __future__ import annotations

import math
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nexus_connector_async import InvalidRequest
from nexus_connector_async.adapters import InvalidPhoneNumber
from nexus_connector_async.adapters._phone import (
    SmsSegments,
    count_segments,
    validate_e164,
    validate_sms_body,
)

E164 = re.compile(r"\+[1-9][0-9]{1,14}")
# GSM 03.38 default alphabet (without ESC) and extension table, written out again here.
GSM_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM_EXTENSION = "\f^{}\\[~]|€"
GSM = GSM_BASIC + GSM_EXTENSION
EMOJI = "\U0001f600"

# --- E.164 ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "number",
    ["+14155552671", "+442071838750", "+551155256325", "+12", "+123456789012345"],
)
def test_an_e164_number_is_returned_unchanged(number: str) -> None:
    assert validate_e164(number) is number


@pytest.mark.parametrize(
    ("number", "reason"),
    [
        ("", "empty"),
        ("14155552671", "not_e164"),
        ("0014155552671", "not_e164"),
        ("01144207183875", "not_e164"),
        (" +14155552671", "not_e164"),
        ("+14155552671 ", "not_e164"),
        ("+14155552671\n", "not_e164"),
        ("+1 415 555 2671", "not_e164"),
        ("+1-415-555-2671", "not_e164"),
        ("+1 (415) 5552671", "not_e164"),
        ("+1.415.555.2671", "not_e164"),
        ("++14155552671", "not_e164"),
        ("+1415555267a", "not_e164"),
        ("+\uff11\uff14\uff11\uff15", "not_e164"),  # full-width digits
        ("+\u0664\u0664\u0662\u0660", "not_e164"),  # Arabic-Indic digits
        ("+\u00b9\u00b2", "not_e164"),  # superscripts, which str.isdigit() accepts
        ("+044207183875", "bad_country_code"),
        ("+0", "bad_country_code"),
        ("+", "too_short"),
        ("+1", "too_short"),
        ("+1234567890123456", "too_long"),
        ("+" + "1" * 1000, "too_long"),
    ],
)
def test_anything_but_e164_is_refused_with_a_reason(number: str, reason: str) -> None:
    with pytest.raises(InvalidPhoneNumber) as caught:
        validate_e164(number)
    assert caught.value.reason == reason
    assert isinstance(caught.value, InvalidRequest)


@pytest.mark.parametrize("number", [None, 14155552671, b"+14155552671"])
def test_a_phone_number_that_is_not_a_str_is_refused(number: Any) -> None:
    with pytest.raises(InvalidPhoneNumber, match="must be a str") as caught:
        validate_e164(number)
    assert caught.value.reason == "not_a_string"


@pytest.mark.parametrize(
    ("number", "words"),
    [
        ("0014155552671", "must start with '+'"),
        ("+1 415 555 2671", "only digits after '+'"),
        ("+044207183875", "country code starting with 0"),
        ("+1", "1 digits; E.164 needs 2 to 15"),
        ("+1234567890123456", "16 digits; E.164 allows at most 15"),
    ],
)
def test_the_error_message_names_what_is_wrong(number: str, words: str) -> None:
    with pytest.raises(InvalidPhoneNumber, match=re.escape(words)):
        validate_e164(number)


@pytest.mark.parametrize("number", ["+" + "1" * 10_000, "x" * 10_000, "+1 " * 5_000])
def test_the_error_message_does_not_echo_a_very_long_input(number: str) -> None:
    with pytest.raises(InvalidPhoneNumber) as caught:
        validate_e164(number)
    assert len(str(caught.value)) < 200


@given(st.one_of(st.text(), st.from_regex(r"\+[0-9]{0,17}", fullmatch=True)))
def test_any_string_is_either_returned_as_is_or_refused_as_an_invalid_phone_number(
    number: str,
) -> None:
    try:
        result = validate_e164(number)
    except InvalidPhoneNumber:
        assert not E164.fullmatch(number)
    else:
        assert result is number
        assert E164.fullmatch(number)


@given(st.from_regex(E164, fullmatch=True))
def test_every_number_matching_the_e164_pattern_is_accepted(number: str) -> None:
    assert validate_e164(number) is number


# --- SMS segments -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("", SmsSegments("GSM-7", 0, 0)),
        ("Hello", SmsSegments("GSM-7", 5, 1)),
        ("a" * 160, SmsSegments("GSM-7", 160, 1)),
        ("a" * 161, SmsSegments("GSM-7", 161, 2)),
        ("a" * 306, SmsSegments("GSM-7", 306, 2)),
        ("a" * 307, SmsSegments("GSM-7", 307, 3)),
        ("€" * 80, SmsSegments("GSM-7", 160, 1)),
        ("€" * 81, SmsSegments("GSM-7", 162, 2)),
        ("^{}\\[~]|€\f", SmsSegments("GSM-7", 20, 1)),
        ("Ç\r\nÆ¤§¿", SmsSegments("GSM-7", 7, 1)),
        # 306 septets would fill two parts, but the escape pair may not straddle them.
        ("a" * 152 + "€" + "a" * 152, SmsSegments("GSM-7", 306, 3)),
        ("ç", SmsSegments("UCS-2", 1, 1)),  # lower-case c-cedilla is not GSM; Ç is
        ("a" * 159 + "ç", SmsSegments("UCS-2", 160, 3)),
        ("ç" * 70, SmsSegments("UCS-2", 70, 1)),
        ("ç" * 71, SmsSegments("UCS-2", 71, 2)),
        ("ç" * 134, SmsSegments("UCS-2", 134, 2)),
        ("ç" * 135, SmsSegments("UCS-2", 135, 3)),
        (EMOJI, SmsSegments("UCS-2", 2, 1)),
        (EMOJI * 35, SmsSegments("UCS-2", 70, 1)),
        (EMOJI * 36, SmsSegments("UCS-2", 72, 2)),
        # 134 code units would fill two parts, but a surrogate pair may not be split.
        ("ç" * 66 + EMOJI + "ç" * 66, SmsSegments("UCS-2", 134, 3)),
        ("\ud800", SmsSegments("UCS-2", 1, 1)),  # a lone surrogate does not crash the count
    ],
)
def test_segments_are_counted_per_encoding(body: str, expected: SmsSegments) -> None:
    assert count_segments(body) == expected


def test_counting_segments_of_something_that_is_not_a_str_is_refused() -> None:
    with pytest.raises(InvalidRequest, match="must be a str"):
        count_segments(b"hello")  # type: ignore[arg-type]


@given(st.one_of(st.text(alphabet=GSM), st.text(), st.text(alphabet=GSM + "ç" + EMOJI)))
def test_any_text_gets_a_consistent_segment_count(body: str) -> None:
    result = count_segments(body)
    gsm_only = all(ch in GSM for ch in body)
    assert result.encoding == ("GSM-7" if gsm_only else "UCS-2")
    assert (result.segments == 0) == (body == "")
    assert (result.units == 0) == (body == "")
    single, per_part = (160, 153) if gsm_only else (70, 67)
    if gsm_only:
        assert result.units == len(body) + sum(ch in GSM_EXTENSION for ch in body)
    else:
        assert result.units == len(body.encode("utf-16-le")) // 2
    if 0 < result.units <= single:
        assert result.segments == 1
    elif result.units > single:
        # At least the tight packing; keeping pairs whole wastes at most one unit per part.
        assert math.ceil(result.units / per_part) <= result.segments
        assert result.segments <= math.ceil(result.units / (per_part - 1))


# --- SMS body ---------------------------------------------------------------------------------


@pytest.mark.parametrize("body", ["Hi", " padded ", "x" * 1600, EMOJI])
def test_a_sendable_body_is_returned_unchanged(body: str) -> None:
    assert validate_sms_body(body) is body


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (None, "must be a str"),
        (b"hi", "must be a str"),
        ("", "empty"),
        (" \n\t", "only whitespace"),
        ("a\x00b", "NUL character at position 1"),
        ("x" * 1601, "1601 characters; the limit is 1600"),
    ],
)
def test_unsendable_bodies_are_refused_with_a_clear_message(body: Any, problem: str) -> None:
    with pytest.raises(InvalidRequest, match=problem):
        validate_sms_body(body)


def test_the_body_length_limit_can_be_lowered() -> None:
    assert validate_sms_body("x" * 10, max_chars=10) == "x" * 10
    with pytest.raises(InvalidRequest, match="11 characters; the limit is 10"):
        validate_sms_body("x" * 11, max_chars=10)
