"""`TwilioSimulator`: Twilio's Messages, Balance and Lookup v2 APIs on 127.0.0.1, for tests.

It checks what real Twilio would (HTTP Basic auth, the account in the path, the `To` number,
the body length) and what a correct client must get right but Twilio would silently tolerate
(form encoding, PascalCase parameter names, plain repeated `MediaUrl` keys). Such client
mistakes answer HTTP 400 with code 0 and are listed in `violations`. A `StatusCallback` must
be an absolute http(s) URL whose host has no underscore (vendor-facts 3.2; 400, code 21609).
`num_segments` comes from the simulator's own GSM 03.38 / UTF-16 counter
(`simulated_segments`), not from the library's, so the two check each other.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import email.utils
import itertools
import re
from collections.abc import Callable
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, urlsplit

import msgspec
from aiohttp import web

__all__ = ["SimulatedMessage", "SimulatedRequest", "TwilioSimulator", "simulated_segments"]

# GSM 03.38 default alphabet in code order 0x00-0x7F (0x1B, the escape, is not a character),
# and the extension table reached through that escape (two septets each).
_GSM_TABLE = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_SEPTETS = {ch: 1 for i, ch in enumerate(_GSM_TABLE) if i != 0x1B}
_GSM_SEPTETS.update(dict.fromkeys("\x0c^{}\\[~]|€", 2))


def simulated_segments(body: str) -> int:
    """Segments Twilio bills for `body`, counted independently of the library.

    GSM-7 when every character is in the GSM 03.38 tables: 160 septets in one SMS, else parts
    of 153 (a 7-septet header each) with no escape pair split. Otherwise UCS-2 over UTF-16
    code units: 70 in one SMS, else parts of 67 with no surrogate pair split.
    """
    if not body:
        return 0
    if all(ch in _GSM_SEPTETS for ch in body):
        units = [_GSM_SEPTETS[ch] for ch in body]
        single, part = 160, 153
    else:
        raw = body.encode("utf-16-le", "surrogatepass")
        units = [len(ch.encode("utf-16-le", "surrogatepass")) // 2 for ch in body]
        assert sum(units) * 2 == len(raw)
        single, part = 70, 67
    if sum(units) <= single:
        return 1
    segments, room = 0, 0
    for width in units:
        if width > room:
            segments, room = segments + 1, part
        room -= width
    return segments


def _bad_callback(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme not in ("http", "https") or not parts.hostname or "_" in parts.hostname


DEFAULT_ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
DEFAULT_AUTH_TOKEN = "sim_auth_token_0123456789abcdef"

_E164 = re.compile(r"\+[1-9][0-9]{1,14}")
_PASCAL = re.compile(r"[A-Z][A-Za-z]*")
# Messages create parameters in twilio_api_v2010.json (CreateMessage request body).
_CREATE_PARAMS = frozenset(
    {
        "To",
        "StatusCallback",
        "ApplicationSid",
        "MaxPrice",
        "ProvideFeedback",
        "Attempt",
        "ValidityPeriod",
        "ForceDelivery",
        "ContentRetention",
        "AddressRetention",
        "SmartEncoded",
        "PersistentAction",
        "TrafficType",
        "ShortenUrls",
        "ScheduleType",
        "SendAt",
        "SendAsMms",
        "ContentVariables",
        "RiskCheck",
        "From",
        "FallbackFrom",
        "MessagingServiceSid",
        "Body",
        "MediaUrl",
        "ContentSid",
    }
)
_REPEATABLE = frozenset({"MediaUrl", "PersistentAction"})
_COUNTRIES = {"1": "US", "44": "GB", "49": "DE", "33": "FR", "55": "BR", "61": "AU"}


class SimulatedRequest(NamedTuple):
    """One request as the simulator saw it (form pairs in order, repeated keys kept)."""

    method: str
    path: str
    raw_path: str
    query: list[tuple[str, str]]
    form: list[tuple[str, str]]
    headers: dict[str, str]


class SimulatedMessage(NamedTuple):
    """A message the simulator accepted (it would go to the handset)."""

    sid: str
    to: str
    from_: str | None
    messaging_service_sid: str | None
    body: str
    media_urls: tuple[str, ...]
    status_callback: str | None
    account_sid: str = ""  # the (sub)account in the request path


class _Lookup(NamedTuple):
    valid: bool
    line_type: str | None
    carrier_name: str | None
    country_code: str | None
    validation_errors: tuple[str, ...]


class _Fault(NamedTuple):
    status: int
    code: int
    processed: bool  # the message was created before the error was answered
    retry_after: str | None


def _error(
    status: int, code: int, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    body = {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
    return web.json_response(body, status=status, headers=headers)


class TwilioSimulator:
    """Twilio on 127.0.0.1: `async with TwilioSimulator() as sim:` then point the adapter at
    `sim.base_url` for both `base_url` and `lookups_base_url`.

    Hooks: `reject(number, code)` makes every send to `number` fail with that Twilio code;
    `throttle(n)` answers the next n sends 429/20429 without creating them; `fail(n, status,
    processed=)` answers 5xx (after creating the message if `processed`); `hold(event)` creates
    messages but answers only once the event is set; `set_lookup(number, ...)` scripts Lookup.
    `latency` delays each created message's answer. `messages`, `requests`, `violations` and
    `max_in_flight` (concurrent Messages requests) record what happened.

    `subaccounts` ({`AC...` SID: auth token}) adds subaccounts of the main account: a request
    for a subaccount's path is accepted with that subaccount's own credentials or the main
    account's (as Twilio lets a parent act for its subaccounts), never another subaccount's;
    each message records its `account_sid`. Subaccounts have no balance (vendor-facts 3.3).
    """

    def __init__(
        self,
        account_sid: str = DEFAULT_ACCOUNT_SID,
        auth_token: str = DEFAULT_AUTH_TOKEN,
        *,
        api_keys: dict[str, str] | None = None,
        subaccounts: dict[str, str] | None = None,
        balance: str | None = "25.00",
        currency: str = "USD",
        latency: float = 0.0,
    ) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self._api_keys = dict(api_keys or {})
        self._subaccounts = dict(subaccounts or {})
        self.balance = balance
        self.currency = currency
        self.latency = latency
        self.base_url = ""
        self.messages: list[SimulatedMessage] = []
        self.requests: list[SimulatedRequest] = []
        self.violations: list[str] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.on_request: Callable[[SimulatedRequest], None] | None = None
        self._rejections: dict[str, tuple[int, int]] = {}
        self._faults: list[_Fault] = []
        self._hold: asyncio.Event | None = None
        self._lookups: dict[str, _Lookup] = {}
        self._sids = itertools.count(1)
        self._runner: web.AppRunner | None = None

    def __repr__(self) -> str:
        return f"TwilioSimulator(base_url={self.base_url!r}, messages={len(self.messages)})"

    # -- scripting -----------------------------------------------------------------------------

    def reject(self, number: str, code: int, *, status: int = 400) -> None:
        """Every send to `number` fails with Twilio error `code` (e.g. 21610 opted out)."""
        self._rejections[number] = (status, code)

    def throttle(self, times: int = 1, *, retry_after: float | None = None) -> None:
        """The next `times` sends get 429 / 20429 and are not processed, as Twilio documents."""
        header = None if retry_after is None else f"{retry_after:g}"
        self._faults.extend([_Fault(429, 20429, False, header)] * times)

    def fail(self, times: int = 1, *, status: int = 500, processed: bool = True) -> None:
        """The next `times` sends get a 5xx; with `processed` the message was created anyway."""
        self._faults.extend([_Fault(status, 20500, processed, None)] * times)

    def hold(self, gate: asyncio.Event | None) -> None:
        """Create messages at once but answer only after `gate` is set (None: answer at once)."""
        self._hold = gate

    def set_lookup(
        self,
        number: str,
        *,
        valid: bool = True,
        line_type: str | None = "mobile",
        carrier_name: str | None = "Simulated Mobile",
        country_code: str | None = None,
        validation_errors: tuple[str, ...] = (),
    ) -> None:
        """What Lookup v2 answers for `number`."""
        self._lookups[number] = _Lookup(
            valid, line_type, carrier_name, country_code, validation_errors
        )

    def sent_to(self, number: str) -> list[SimulatedMessage]:
        """Messages accepted for `number`."""
        return [m for m in self.messages if m.to == number]

    # -- server --------------------------------------------------------------------------------

    async def __aenter__(self) -> TwilioSimulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Listen on a free port of 127.0.0.1."""
        app = web.Application()
        account = "/2010-04-01/Accounts/{sid}"
        app.router.add_post(account + "/Messages.json", self._create_message)
        app.router.add_get(account + "/Balance.json", self._balance)
        app.router.add_get("/v2/PhoneNumbers/{number}", self._lookup)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{port}"

    async def close(self) -> None:
        """Stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- handlers ------------------------------------------------------------------------------

    async def _record(self, request: web.Request) -> SimulatedRequest:
        raw = await request.read()
        form: list[tuple[str, str]] = []
        if raw:
            form = parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True)
        seen = SimulatedRequest(
            request.method,
            request.path,
            request.raw_path,
            list(parse_qsl(request.query_string, keep_blank_values=True)),
            form,
            dict(request.headers),
        )
        self.requests.append(seen)
        if self.on_request is not None:
            self.on_request(seen)
        return seen

    def _authorized(self, request: web.Request, path_sid: str | None) -> bool:
        header = request.headers.get("Authorization", "")
        scheme, _, encoded = header.partition(" ")
        if scheme != "Basic":
            return False
        try:
            user, _, secret = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        accounts = {**self._subaccounts, self.account_sid: self.auth_token}
        if path_sid is not None and path_sid not in accounts:
            return False
        if user in accounts:
            # Its own path, or the main account acting for a subaccount; never a sibling's.
            if path_sid not in (None, user) and user != self.account_sid:
                return False
            return secret == accounts[user]
        return self._api_keys.get(user) == secret

    def _violation(self, text: str) -> web.Response:
        self.violations.append(text)
        return _error(400, 0, f"simulator: {text}")

    async def _create_message(self, request: web.Request) -> web.StreamResponse:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await self._create(request)
        finally:
            self.in_flight -= 1

    async def _create(self, request: web.Request) -> web.StreamResponse:
        seen = await self._record(request)
        seen_sid = request.match_info["sid"]
        if not self._authorized(request, seen_sid):
            return _error(401, 20003, "Authenticate")
        if request.content_type != "application/x-www-form-urlencoded":
            return self._violation(f"Content-Type {request.content_type!r}, expected a form")
        names = [k for k, _ in seen.form]
        for name in names:
            if not _PASCAL.fullmatch(name) or name not in _CREATE_PARAMS:
                return self._violation(f"unknown or non-PascalCase parameter {name!r}")
            if name not in _REPEATABLE and names.count(name) > 1:
                return self._violation(f"parameter {name!r} repeated")
        params = dict(seen.form)
        media = tuple(v for k, v in seen.form if k == "MediaUrl")
        to = params.get("To", "")
        if "To" not in params:
            return _error(400, 21604, "A 'To' phone number is required.")
        if "From" not in params and "MessagingServiceSid" not in params:
            return _error(400, 21603, "A 'From' phone number is required.")
        body = params.get("Body", "")
        if not body and not media and "ContentSid" not in params:
            return _error(400, 21602, "Message body is required.")
        if len(body) > 1600:
            return _error(
                400, 21617, "The concatenated message body exceeds the 1600 character limit."
            )
        if len(media) > 10:
            return self._violation(f"{len(media)} MediaUrl values; Twilio takes at most 10")
        if not _E164.fullmatch(to):
            return _error(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        callback = params.get("StatusCallback")
        if callback is not None and _bad_callback(callback):
            return _error(400, 21609, f"The StatusCallback URL {callback} is not valid.")
        if self._faults:
            fault = self._faults.pop(0)
            if fault.processed:
                self._store(params, media, seen_sid)
            headers = {"Retry-After": fault.retry_after} if fault.retry_after else None
            text = "Too Many Requests" if fault.status == 429 else "Internal Server Error"
            return _error(fault.status, fault.code, text, headers)
        if to in self._rejections:
            status, code = self._rejections[to]
            return _error(status, code, f"simulated error {code} for {to}")
        message = self._store(params, media, seen_sid)
        if self.latency > 0:
            await asyncio.sleep(self.latency)  # a vendor's processing time
        if self._hold is not None:
            await self._hold.wait()
        return web.json_response(self._resource(message), status=201)

    def _store(
        self, params: dict[str, str], media: tuple[str, ...], account_sid: str
    ) -> SimulatedMessage:
        prefix = "MM" if media else "SM"
        message = SimulatedMessage(
            f"{prefix}{next(self._sids):032x}",
            params["To"],
            params.get("From"),
            params.get("MessagingServiceSid"),
            params.get("Body", ""),
            media,
            params.get("StatusCallback"),
            account_sid,
        )
        self.messages.append(message)
        return message

    def _resource(self, m: SimulatedMessage) -> dict[str, Any]:
        now = email.utils.formatdate(usegmt=False).replace("-0000", "+0000")
        pooled = m.from_ is None  # a Messaging Service still has to pick the sender
        uri = f"/2010-04-01/Accounts/{m.account_sid}/Messages/{m.sid}.json"
        return {
            "account_sid": m.account_sid,
            "api_version": "2010-04-01",
            "body": m.body,
            "date_created": now,
            "date_sent": None,
            "date_updated": now,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": m.from_,
            "messaging_service_sid": m.messaging_service_sid,
            "num_media": str(len(m.media_urls)),
            "num_segments": "0" if pooled else str(simulated_segments(m.body)),
            "price": None,
            "price_unit": "USD",
            "sid": m.sid,
            "status": "accepted" if pooled else "queued",
            "subresource_uris": {"media": uri.replace(".json", "/Media.json")},
            "to": m.to,
            "uri": uri,
        }

    async def _balance(self, request: web.Request) -> web.StreamResponse:
        await self._record(request)
        sid = request.match_info["sid"]
        if not self._authorized(request, sid):
            return _error(401, 20003, "Authenticate")
        balance = self.balance if sid == self.account_sid else None  # subaccounts have none
        body = {"account_sid": sid, "balance": balance}
        body["currency"] = self.currency if balance is not None else None
        return web.json_response(body)

    async def _lookup(self, request: web.Request) -> web.StreamResponse:
        seen = await self._record(request)
        if not self._authorized(request, None):
            return _error(401, 20003, "Authenticate")
        number = request.match_info["number"]
        if " " in number:
            return self._violation("'+' in the Lookup path was decoded as a space")
        fields = dict(seen.query).get("Fields", "")
        found = self._lookups.get(number) or _Lookup(True, "mobile", "Simulated Mobile", None, ())
        calling = next((c for c in _COUNTRIES if number[1:].startswith(c)), None)
        country = found.country_code or (_COUNTRIES[calling] if calling else None)
        line = None
        if "line_type_intelligence" in fields.split(","):
            line = {
                "carrier_name": found.carrier_name,
                "mobile_country_code": "310" if found.line_type == "mobile" else None,
                "mobile_network_code": "456" if found.line_type == "mobile" else None,
                "type": found.line_type,
                "error_code": None,
            }
        body = {
            "calling_country_code": calling,
            "country_code": country,
            "phone_number": number,
            "national_format": None,
            "valid": found.valid,
            "validation_errors": list(found.validation_errors) or None,
            "caller_name": None,
            "sim_swap": None,
            "call_forwarding": None,
            "line_status": None,
            "line_type_intelligence": line,
            "identity_match": None,
            "reassigned_number": None,
            "sms_pumping_risk": None,
            "phone_number_quality_score": None,
            "pre_fill": None,
            "url": f"https://lookups.twilio.com/v2/PhoneNumbers/{number}",
        }
        return web.Response(
            body=msgspec.json.encode(body), content_type="application/json", status=200
        )
