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
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from aiohttp import web

from ._vendor_server import Answer, Answered, SimulatedRequest, VendorServer

__all__ = ["SimulatedMessage", "TwilioSimulator", "simulated_segments"]

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


_ACCOUNT_PATH = re.compile(r"/2010-04-01/Accounts/([^/]+)/(Messages|Balance)\.json")
_LOOKUP_PATH = re.compile(r"/v2/PhoneNumbers/([^/]+)")


class _Send(NamedTuple):
    """A Messages create that passed the checks."""

    params: dict[str, str]
    media: tuple[str, ...]
    account_sid: str


def _error(status: int, code: int, message: str, headers: dict[str, str] | None = None) -> Answer:
    body = {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
    return Answer(status, body, headers or {})


def _is_send(request: SimulatedRequest) -> bool:
    match = _ACCOUNT_PATH.fullmatch(request.path)
    return request.method == "POST" and match is not None and match.group(2) == "Messages"


def _media_type(request: SimulatedRequest) -> str:
    """The media type as aiohttp reports it (no parameters; octet-stream when absent)."""
    value = request.headers.get("Content-Type", "application/octet-stream")
    return value.split(";")[0].strip().lower()


class TwilioSimulator(VendorServer):
    """Twilio on 127.0.0.1: `async with TwilioSimulator() as sim:` then point the adapter at
    `sim.url` for both `base_url` and `lookups_base_url`.

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
        super().__init__()
        self.account_sid = account_sid
        self.auth_token = auth_token
        self._api_keys = dict(api_keys or {})
        self._subaccounts = dict(subaccounts or {})
        self.balance = balance
        self.currency = currency
        self.latency = latency
        self.messages: list[SimulatedMessage] = []
        self.violations: list[str] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._rejections: dict[str, tuple[int, int]] = {}
        self._lookups: dict[str, _Lookup] = {}
        self._sids = itertools.count(1)

    def __repr__(self) -> str:
        return f"TwilioSimulator(url={self.url!r}, messages={len(self.messages)})"

    # -- scripting -----------------------------------------------------------------------------

    def reject(self, number: str, code: int, *, status: int = 400) -> None:
        """Every send to `number` fails with Twilio error `code` (e.g. 21610 opted out)."""
        self._rejections[number] = (status, code)

    def throttle(self, times: int = 1, *, retry_after: float | None = None) -> None:
        """The next `times` sends get 429 / 20429 and are not processed, as Twilio documents."""
        headers = {} if retry_after is None else {"Retry-After": f"{retry_after:g}"}
        fault = _error(429, 20429, "Too Many Requests", headers)
        self.inject(*fault, times=times, match=_is_send)

    def fail(self, times: int = 1, *, status: int = 500, processed: bool = True) -> None:
        """The next `times` sends get a 5xx; with `processed` the message was created anyway."""
        fault = _error(status, 20500, "Internal Server Error")
        self.inject(*fault, times=times, match=_is_send, processed=processed)

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

    # -- the pipeline steps ------------------------------------------------------------------

    #: Messages are created at once; `hold` delays only the answer.
    hold_before_route = False

    async def handle(self, request: SimulatedRequest) -> web.StreamResponse:
        """The pipeline, counting concurrent Messages requests in `max_in_flight`."""
        if not _is_send(request):
            return await super().handle(request)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await super().handle(request)
        finally:
            self.in_flight -= 1

    def authenticate(self, request: SimulatedRequest) -> None:
        """HTTP Basic with the account (or a subaccount, or an API key) in the path."""
        account = _ACCOUNT_PATH.fullmatch(request.path)
        lookup = _LOOKUP_PATH.fullmatch(request.path)
        if account is None and lookup is None:
            raise Answered(
                _error(404, 20404, f"The requested resource {request.path} was not found")
            )
        sid, kind = account.groups() if account is not None else (None, "Lookup")
        if request.method != ("POST" if kind == "Messages" else "GET"):
            raise Answered(_error(405, 20004, "Method not allowed"))
        if not self._authorized(request, sid):
            raise Answered(_error(401, 20003, "Authenticate"))

    async def parse(self, request: SimulatedRequest) -> _Send | None:
        """What Twilio and a careful client check before a message is created."""
        if _is_send(request):
            return self._check_send(request)
        if _LOOKUP_PATH.fullmatch(request.path) and " " in request.path:
            raise Answered(self._violation("'+' in the Lookup path was decoded as a space"))
        return None

    async def route(self, request: SimulatedRequest, parsed: Any) -> Answer:
        """Create the message, or answer Balance or Lookup."""
        if isinstance(parsed, _Send):
            return await self._create(parsed)
        account = _ACCOUNT_PATH.fullmatch(request.path)
        if account is not None:
            return self._balance(account.group(1))
        return self._lookup(request)

    def _authorized(self, request: SimulatedRequest, path_sid: str | None) -> bool:
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

    def _violation(self, text: str) -> Answer:
        self.violations.append(text)
        return _error(400, 0, f"simulator: {text}")

    def _check_send(self, request: SimulatedRequest) -> _Send:
        media_type = _media_type(request)
        if media_type != "application/x-www-form-urlencoded":
            raise Answered(self._violation(f"Content-Type {media_type!r}, expected a form"))
        form = request.form
        names = [k for k, _ in form]
        for name in names:
            if not _PASCAL.fullmatch(name) or name not in _CREATE_PARAMS:
                raise Answered(self._violation(f"unknown or non-PascalCase parameter {name!r}"))
            if name not in _REPEATABLE and names.count(name) > 1:
                raise Answered(self._violation(f"parameter {name!r} repeated"))
        params = dict(form)
        media = tuple(v for k, v in form if k == "MediaUrl")
        to = params.get("To", "")
        body = params.get("Body", "")
        callback = params.get("StatusCallback")
        refusal = None
        if "To" not in params:
            refusal = _error(400, 21604, "A 'To' phone number is required.")
        elif "From" not in params and "MessagingServiceSid" not in params:
            refusal = _error(400, 21603, "A 'From' phone number is required.")
        elif not body and not media and "ContentSid" not in params:
            refusal = _error(400, 21602, "Message body is required.")
        elif len(body) > 1600:
            text = "The concatenated message body exceeds the 1600 character limit."
            refusal = _error(400, 21617, text)
        elif len(media) > 10:
            refusal = self._violation(f"{len(media)} MediaUrl values; Twilio takes at most 10")
        elif not _E164.fullmatch(to):
            refusal = _error(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        elif callback is not None and _bad_callback(callback):
            refusal = _error(400, 21609, f"The StatusCallback URL {callback} is not valid.")
        if refusal is not None:
            raise Answered(refusal)
        account = _ACCOUNT_PATH.fullmatch(request.path)
        assert account is not None
        return _Send(params, media, account.group(1))

    async def _create(self, send: _Send) -> Answer:
        to = send.params["To"]
        if to in self._rejections:
            status, code = self._rejections[to]
            raise Answered(_error(status, code, f"simulated error {code} for {to}"))
        message = self._store(send.params, send.media, send.account_sid)
        if self.latency > 0:
            await asyncio.sleep(self.latency)  # a vendor's processing time
        await self.processing()
        return Answer(201, self._resource(message))

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

    def _balance(self, sid: str) -> Answer:
        balance = self.balance if sid == self.account_sid else None  # subaccounts have none
        body = {"account_sid": sid, "balance": balance}
        body["currency"] = self.currency if balance is not None else None
        return Answer(200, body)

    def _lookup(self, request: SimulatedRequest) -> Answer:
        number = request.path.removeprefix("/v2/PhoneNumbers/")
        fields = dict(request.query_params).get("Fields", "")
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
        return Answer(200, body)
