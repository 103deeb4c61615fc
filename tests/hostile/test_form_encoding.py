"""Form encoding of arbitrary nested payloads, checked against a reference decoder.

The bracket notation (`card[number]=...`, `items[0][price]=...`) is parsed back with the
standard library and a small bracket parser, and must give the payload again (None and empty
containers dropped, scalars as the strings the vendor receives). A payload the notation cannot
carry unambiguously is refused with `InvalidRequest`, never sent garbled.
"""

from __future__ import annotations

import datetime
import re
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nexus_connector_async import Connector, Endpoint, InvalidRequest, Response
from nexus_connector_async._encoding import encode_form, encode_json, fingerprint
from nexus_connector_async.testing import MockTransport

from ._strategies import check_refusal

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Keys the notation can carry: anything but brackets (and, nested, not empty).
plain_keys = st.text(
    alphabet=st.characters(blacklist_characters="[]", blacklist_categories=["Cs"]),
    min_size=1,
    max_size=8,
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.decimals(allow_nan=False, allow_infinity=False),
    st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=12),
)
payloads = st.dictionaries(
    plain_keys,
    st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4), st.dictionaries(plain_keys, inner, max_size=4)
        ),
        max_leaves=12,
    ),
    max_size=6,
)

_SEGMENT = re.compile(r"\[([^\[\]]*)\]")


def parse_brackets(body: bytes) -> dict[str, Any]:
    """The reference decoder: `a[b][0]=x` pairs back into nested dicts (list indices as keys)."""
    out: dict[str, Any] = {}
    for key, value in parse_qsl(body.decode("ascii"), keep_blank_values=True, strict_parsing=False):
        head, _, rest = key.partition("[")
        path = [head, *_SEGMENT.findall("[" + rest)] if rest else [head]
        assert not rest or "".join(f"[{p}]" for p in path[1:]) == "[" + rest, key
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
            assert isinstance(node, dict), f"{key} is both a value and a container"
        assert path[-1] not in node, f"{key} appears twice"
        node[path[-1]] = value
    return out


def expected(value: Any) -> Any:
    """What the vendor should see: lists as index maps, scalars as strings, empties dropped."""
    if isinstance(value, dict | list):
        items = value.items() if isinstance(value, dict) else enumerate(value)
        kept = {str(k): expected(v) for k, v in items}
        return {k: v for k, v in kept.items() if v is not None} or None
    if value is None:
        return None
    if value is True or value is False:
        return "true" if value else "false"
    return str(value)


@settings(SETTINGS, max_examples=120)  # recursive payloads are slow to generate
@given(payload=payloads)
def test_a_nested_payload_round_trips_through_the_bracket_notation(payload: dict[str, Any]) -> None:
    body = encode_form(payload)
    body.decode("ascii")  # percent-encoded: plain ASCII on the wire
    assert parse_brackets(body) == (expected(payload) or {})


hostile_keys = st.one_of(
    st.sampled_from(["", "[", "]", "a]", "[0]", "a[b]", "]["]),
    st.text(alphabet=st.sampled_from("[]ab"), min_size=1, max_size=4).filter(
        lambda k: "[" in k or "]" in k
    ),
)


@SETTINGS
@given(key=hostile_keys, outer=plain_keys)
def test_a_nested_key_that_would_change_the_structure_is_refused(key: str, outer: str) -> None:
    """`{"metadata": {"x][amount": 1}}` would otherwise arrive as another field."""
    with pytest.raises(InvalidRequest) as err:
        encode_form({outer: {key: "1"}})
    check_refusal(err.value, "form key")


@SETTINGS
@given(
    value=st.one_of(
        st.floats(),
        st.text(alphabet=st.characters(categories=["Cs"]), min_size=1, max_size=3),
        st.builds(object),
        st.binary(min_size=1, max_size=3),
        st.complex_numbers(),
        st.sets(st.integers(), min_size=1, max_size=2),
    ),
    where=st.sampled_from(["top", "nested", "list"]),
)
def test_an_unencodable_value_is_refused_naming_the_problem(value: Any, where: str) -> None:
    payload: dict[str, Any] = {
        "top": {"v": value},
        "nested": {"a": {"b": value}},
        "list": {"a": [1, value]},
    }[where]
    with pytest.raises(InvalidRequest) as err:
        encode_form(payload)
    check_refusal(err.value, "form", "float", "Unicode", "encode")


@SETTINGS
@given(value=st.text(alphabet=st.characters(categories=["Cs"]), min_size=1, max_size=3))
def test_json_bodies_and_fingerprints_refuse_lone_surrogates_with_a_typed_error(value: str) -> None:
    with pytest.raises(InvalidRequest) as err:
        encode_json({"name": value})
    check_refusal(err.value, "JSON", "Unicode")
    assert len(fingerprint("POST", "https://vendor.test/x", {"name": value})) == 32


@SETTINGS
@given(
    payload=st.one_of(
        st.dictionaries(st.sampled_from(["a", "b"]), st.floats(), min_size=1),
        st.dictionaries(
            st.sampled_from(["a"]),
            st.text(alphabet=st.characters(categories=["Cs"]), min_size=1, max_size=2),
            min_size=1,
        ),
    ),
    method=st.sampled_from(["GET", "POST", "DELETE"]),
    body=st.sampled_from(["json", "form"]),
)
async def test_an_unencodable_payload_is_refused_before_anything_is_sent(
    payload: dict[str, Any], method: str, body: Any
) -> None:
    transport = MockTransport(lambda r: Response(200, {}, b"{}"))
    ep = Endpoint("https://vendor.test/x", method, body=body)
    async with Connector(http=transport) as c:
        try:
            await c.execute("vendor", ep, payload, idempotency_key="k-1")
        except Exception as exc:
            check_refusal(exc, "form", "float", "JSON", "Unicode")
        else:
            assert body == "json"  # JSON carries floats fine
            assert method == "POST"
    if transport.requests:
        assert body == "json"


def test_the_notation_for_known_shapes() -> None:
    when = datetime.datetime(2024, 1, 2, tzinfo=datetime.UTC)
    payload = {
        "amount": 1000,
        "capture": False,
        "card": {"number": "4242", "exp": [1, 2]},
        "metadata": {"order id": "a&b=c"},
        "skip": None,
        "at": when,
        "fee": Decimal("1.50"),
    }
    body = encode_form(payload)
    assert body == (
        b"amount=1000&capture=false&card[number]=4242&card[exp][0]=1&card[exp][1]=2"
        b"&metadata[order%20id]=a%26b%3Dc&at=1704153600&fee=1.50"
    )
    # Caller-chosen flat keys at the top level keep their brackets (Stripe's `expand[]`).
    assert encode_form({"expand[]": "data.customer"}) == b"expand[]=data.customer"
