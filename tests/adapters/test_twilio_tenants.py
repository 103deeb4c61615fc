"""Twilio per-tenant accounts (api.md rules 28, 37): `TwilioSmsAdapter(credentials=...)`."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from nexus_connector_async import (
    Connector,
    ConnectorError,
    CredentialRefreshError,
    IdempotencyKey,
    InvalidRequest,
    RetryPolicy,
)
from nexus_connector_async.adapters import (
    AuthenticationFailed,
    TwilioAccount,
    TwilioAccountProvider,
)
from nexus_connector_async.adapters.twilio import TwilioError, TwilioSmsAdapter
from nexus_connector_async.testing import SimulatedRequest, TwilioSimulator, capture_logs

FAST = RetryPolicy(max_attempts=3, base_delay=0.0, max_delay=0.0)
TO = "+14155552671"
SUB_A = "AC" + "a1" * 16
SUB_B = "AC" + "b2" * 16
TOKEN_A = "tenant_a_token_PLANT_0001"
TOKEN_B = "tenant_b_token_PLANT_0002"
FROM_A = "+15005550001"
FROM_B = "+15005550002"
PLATFORM_FROM = "+15005550006"


class Accounts:
    """A `TwilioAccountProvider` over a dict, recording what it was asked."""

    def __init__(self, accounts: dict[str | None, TwilioAccount]) -> None:
        self.accounts = accounts
        self.asked: list[tuple[str, str | None]] = []

    async def get_account(self, service: str, tenant_id: str | None = None) -> TwilioAccount:
        self.asked.append((service, tenant_id))
        return self.accounts[tenant_id]


@pytest.fixture
async def sim() -> AsyncIterator[TwilioSimulator]:
    async with TwilioSimulator(subaccounts={SUB_A: TOKEN_A, SUB_B: TOKEN_B}) as s:
        yield s


@pytest.fixture
async def connector() -> AsyncIterator[Connector]:
    async with Connector() as c:
        yield c


@pytest.fixture
def accounts() -> Accounts:
    return Accounts(
        {
            "tenant-a": TwilioAccount(SUB_A, TOKEN_A, from_number=FROM_A),
            "tenant-b": TwilioAccount(SUB_B, TOKEN_B, from_number=FROM_B),
        }
    )


def make(connector: Connector, sim: TwilioSimulator, provider: Any, **kw: Any) -> TwilioSmsAdapter:
    return TwilioSmsAdapter(
        connector,
        credentials=provider,
        base_url=sim.url,
        lookups_base_url=sim.url,
        retry=FAST,
        **kw,
    )


def basic_user_secret(request: SimulatedRequest) -> tuple[str, str]:
    scheme, _, encoded = request.headers["Authorization"].partition(" ")
    assert scheme == "Basic"
    user, _, secret = base64.b64decode(encoded).decode().partition(":")
    return user, secret


async def test_each_tenant_sends_from_its_own_subaccount_with_its_own_secret(
    connector: Connector, sim: TwilioSimulator, accounts: Accounts
) -> None:
    twilio = make(connector, sim, accounts)
    assert isinstance(accounts, TwilioAccountProvider)
    a = await twilio.send(TO, "for a", tenant_id="tenant-a")
    b = await twilio.send(TO, "for b", tenant_id="tenant-b")

    first, second = sim.requests
    assert first.path == f"/2010-04-01/Accounts/{SUB_A}/Messages.json"
    assert basic_user_secret(first) == (SUB_A, TOKEN_A)
    assert ("From", FROM_A) in first.form
    assert second.path == f"/2010-04-01/Accounts/{SUB_B}/Messages.json"
    assert basic_user_secret(second) == (SUB_B, TOKEN_B)
    assert ("From", FROM_B) in second.form
    assert [(m.account_sid, m.sid) for m in sim.messages] == [
        (SUB_A, a.message_id),
        (SUB_B, b.message_id),
    ]
    assert accounts.asked == [("twilio", "tenant-a"), ("twilio", "tenant-b")]


async def test_lookup_and_balance_go_out_with_the_tenants_account(
    connector: Connector, sim: TwilioSimulator, accounts: Accounts
) -> None:
    twilio = make(connector, sim, accounts, from_number=PLATFORM_FROM)
    info = await twilio.validate_number(TO, tenant_id="tenant-b")
    assert info.valid
    with pytest.raises(TwilioError, match="no balance information"):
        await twilio.balance(tenant_id="tenant-a")  # subaccounts have no balance
    lookup, balance = sim.requests
    assert basic_user_secret(lookup) == (SUB_B, TOKEN_B)
    assert balance.path == f"/2010-04-01/Accounts/{SUB_A}/Balance.json"
    assert basic_user_secret(balance) == (SUB_A, TOKEN_A)


async def test_the_adapters_sender_is_used_when_the_account_names_none(
    connector: Connector, sim: TwilioSimulator
) -> None:
    provider = Accounts({None: TwilioAccount(SUB_A, TOKEN_A)})
    await make(connector, sim, provider, from_number=PLATFORM_FROM).send(TO, "hi")
    assert ("From", PLATFORM_FROM) in sim.requests[0].form
    with pytest.raises(InvalidRequest, match="from_number or messaging_service_sid"):
        await make(connector, sim, provider).send(TO, "hi")
    assert len(sim.requests) == 1


async def test_two_subaccounts_never_replay_each_others_records(
    connector: Connector, sim: TwilioSimulator, accounts: Accounts
) -> None:
    twilio = make(connector, sim, accounts)
    key = IdempotencyKey("otp-42")
    first = await twilio.send(TO, "code", idempotency_key=key, tenant_id="tenant-a")
    # The tenant moves to another subaccount: the same tenant and key must not replay a's.
    accounts.accounts["tenant-a"] = accounts.accounts["tenant-b"]
    moved = await twilio.send(TO, "code", idempotency_key=key, tenant_id="tenant-a")
    assert not moved.replayed
    assert moved.message_id != first.message_id
    assert [m.account_sid for m in sim.messages] == [SUB_A, SUB_B]
    again = await twilio.send(TO, "code", idempotency_key=key, tenant_id="tenant-a")
    assert (again.replayed, again.message_id) == (True, moved.message_id)
    assert len(sim.messages) == 2


async def test_a_sibling_subaccounts_secret_is_refused_by_the_simulator(
    connector: Connector, sim: TwilioSimulator
) -> None:
    crossed = Accounts({"tenant-a": TwilioAccount(SUB_A, TOKEN_B, from_number=FROM_A)})
    with pytest.raises(AuthenticationFailed):
        await make(connector, sim, crossed).send(TO, "hi", tenant_id="tenant-a")
    assert sim.messages == []


async def test_a_failing_provider_is_a_typed_error_and_nothing_is_sent(
    connector: Connector, sim: TwilioSimulator, accounts: Accounts
) -> None:
    twilio = make(connector, sim, accounts)
    with pytest.raises(CredentialRefreshError, match="KeyError") as caught:
        await twilio.send(TO, "hi", tenant_id="unknown-tenant")
    assert isinstance(caught.value.__cause__, KeyError)
    results = await twilio.send_bulk([(TO, "hi")], tenant_id="unknown-tenant")
    assert isinstance(results[0].error, CredentialRefreshError)
    assert (results[0].status, results[0].sent) == ("error", False)

    class Wrong:
        async def get_account(self, service: str, tenant_id: str | None = None) -> Any:
            return ("AC...", "token")

    with pytest.raises(InvalidRequest, match="must return a TwilioAccount"):
        await make(connector, sim, Wrong()).send(TO, "hi")
    assert sim.requests == []


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"account_sid": SUB_A}, "account_sid and auth_token or a credentials provider"),
        ({"auth_token": TOKEN_A}, "account_sid and auth_token or a credentials provider"),
        ({"credentials": object()}, "TwilioAccountProvider"),
    ],
)
def test_credentials_exclude_one_account_and_must_be_a_provider(
    accounts: Accounts, kwargs: dict[str, Any], match: str
) -> None:
    args = {"credentials": accounts, "from_number": PLATFORM_FROM, **kwargs}
    with pytest.raises(InvalidRequest, match=match):
        TwilioSmsAdapter(Connector(), **args)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"account_sid": "AC123"}, "account_sid"),
        ({"auth_token": ""}, "auth_token"),
        ({"api_key_sid": "SKnothex"}, "api_key_sid"),
        ({"messaging_service_sid": "MG1"}, "messaging_service_sid"),
        ({"from_number": ""}, "from_number"),
    ],
)
def test_a_bad_account_is_refused_when_it_is_made(kwargs: dict[str, Any], match: str) -> None:
    args: dict[str, Any] = {"account_sid": SUB_A, "auth_token": TOKEN_A, **kwargs}
    with pytest.raises(InvalidRequest, match=match):
        TwilioAccount(**args)


async def test_tenant_secrets_never_reach_logs_reprs_or_errors(
    connector: Connector, sim: TwilioSimulator, accounts: Accounts
) -> None:
    wrong_token = "tenant_c_wrong_PLANT_0003"
    accounts.accounts["tenant-c"] = TwilioAccount(SUB_B, wrong_token, from_number=FROM_B)
    twilio = make(connector, sim, accounts)
    sim.reject("+14155550000", 21610)
    errors: list[BaseException] = []
    with capture_logs() as logs:
        await twilio.send(TO, "hi", tenant_id="tenant-a")
        await twilio.send_bulk([("+14155550000", "hi"), (TO, "hi")], tenant_id="tenant-b")
        for tenant in ("tenant-c", "tenant-b"):
            try:
                await twilio.send("+14155550000", "hi", tenant_id=tenant)
            except ConnectorError as exc:
                errors.append(exc)
    assert len(errors) == 2
    secrets = [TOKEN_A, TOKEN_B, wrong_token]
    secrets += [
        base64.b64encode(f"{sid}:{token}".encode()).decode()
        for sid, token in ((SUB_A, TOKEN_A), (SUB_B, TOKEN_B), (SUB_B, wrong_token))
    ]
    text = json.dumps(logs, default=repr) + repr(twilio) + repr(vars(twilio))
    text += repr(list(accounts.accounts.values())) + "".join(f"{e!r} {e}" for e in errors)
    for secret in secrets:
        assert secret not in text
