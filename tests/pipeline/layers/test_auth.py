"""The auth flow: a 401 with refreshed credentials is resent once, as the same attempt."""

from __future__ import annotations

from nexus_connector_async import Credentials
from nexus_connector_async.pipeline._auth import AuthFlow
from nexus_connector_async.pipeline._call import Call
from nexus_connector_async.pipeline._outcome import Outcome

from ._wiring import Parts, response


class Rotating:
    """A provider whose refresh hands out a new token each time, counting refreshes."""

    def __init__(self) -> None:
        self.token = "t0"
        self.refreshes = 0

    async def get_credentials(self, service: str, tenant_id: str | None = None) -> Credentials:
        return Credentials(self.token)

    async def refresh_credentials(self, service: str, tenant_id: str | None = None) -> Credentials:
        self.refreshes += 1
        self.token = f"t{self.refreshes}"
        return Credentials(self.token)


class SameToken(Rotating):
    async def refresh_if_current(
        self, service: str, tenant_id: str | None, rejected: Credentials
    ) -> Credentials:
        return rejected  # someone's refresh did not change it: nothing to resend with


def rejected() -> Outcome:
    return Outcome.rejected_credentials(response(401), Credentials("t0"))


async def test_authorize_adds_the_providers_authorization_header() -> None:
    flow = AuthFlow(Rotating())
    headers, creds = await flow.authorize(Parts().call(), {"X": "1"})
    assert headers["Authorization"] == "Bearer t0"
    assert creds == Credentials("t0")


async def test_a_rejected_token_is_resent_once_as_the_same_first_attempt() -> None:
    flow = AuthFlow(Rotating())
    sends: list[tuple[int, bool]] = []
    results = [rejected(), Outcome.success(response(200), 200)]

    async def send(call: Call, number: int, is_retry: bool) -> Outcome | None:
        sends.append((number, is_retry))
        return results.pop(0)

    outcome = await flow.send(send, Parts().call(), 2, True)
    assert outcome is not None
    assert outcome.status == 200
    assert sends == [(2, True), (2, False)]  # not a retry: same number, admitted as a first one


async def test_a_second_401_in_the_same_call_is_final_and_refreshes_nothing() -> None:
    provider = Rotating()
    flow = AuthFlow(provider)
    call = Parts().call()
    assert await flow.refreshes(call, Credentials("t0"))
    flow.refreshed = True  # the flow resent once already
    assert not await flow.refreshes(call, Credentials("t1"))
    assert provider.refreshes == 1


async def test_a_refresh_that_keeps_the_rejected_token_does_not_resend() -> None:
    flow = AuthFlow(SameToken())
    assert not await flow.refreshes(Parts().call(), Credentials("t0"))
