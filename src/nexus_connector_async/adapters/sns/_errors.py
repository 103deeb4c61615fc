"""botocore failures mapped to typed errors (vendor-facts 4.5, 4.8).

Throttling codes are retried by the pipeline as "not processed"; 5xx and `InternalError` are
transient (an unknown outcome, so not re-sent by default); 4xx codes become typed errors.
"""

from __future__ import annotations

from typing import Any, Final

from ..._errors import (
    ConnectionFailed,
    ConnectorError,
    CredentialRefreshError,
    InvalidRequest,
    RequestTimeout,
)
from ..._models import Response
from .._errors import AuthenticationFailed, OptedOut, VendorError, VendorRateLimited
from .._sms import PhoneNumberRejected

__all__ = [
    "SNS",
    "THROTTLING_CODES",
    "SnsClientError",
    "SnsError",
    "SnsThrottled",
    "map_exception",
    "opted_out",
    "outcome_known_unsent",
]

SNS: Final = "sns"

#: Publish throttling is not modeled; it arrives as Throttling/ThrottlingException, while the
#: SMS-attribute and opt-out operations model `Throttled` (HTTP 429). All of them, and any 429.
THROTTLING_CODES: Final = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "Throttled",
        "ThrottledException",
        "TooManyRequestsException",
    }
)
_AUTH_CODES: Final = frozenset(
    {
        "AuthorizationError",
        "AccessDenied",
        "AccessDeniedException",
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
        "UnrecognizedClientException",
        "ExpiredToken",
    }
)
_INVALID_PARAMETER: Final = frozenset({"InvalidParameter", "ParameterValueInvalid"})


class SnsError(VendorError):
    """Any other SNS error; `code` is the AWS error code (e.g. "InvalidParameter")."""


class SnsClientError(ConnectorError):
    """botocore failed without an SNS answer (client creation, configuration, parsing...).

    `sent` is False when the failure came before the request could leave (no region, a bad
    configuration, unsigned...), True when SNS may have received it (an unparsable answer).
    """

    def __init__(self, message: str, *, sent: bool = False) -> None:
        super().__init__(message)
        self.sent = sent


class SnsThrottled(VendorRateLimited):
    """SNS throttled the call; the pipeline retries it with backoff (it was not processed)."""

    throttled = True
    retry_after: float | None = None


def _response(status: int, headers: Any) -> Response:
    pairs = [(str(k), str(v)) for k, v in dict(headers or {}).items()]
    return Response(status, pairs, b"")


def _from_client_error(error: Any) -> ConnectorError:
    reply = getattr(error, "response", None) or {}
    details = reply.get("Error") or {}
    meta = reply.get("ResponseMetadata") or {}
    code = str(details.get("Code") or "") or None
    text = str(details.get("Message") or "") or None
    status = int(meta.get("HTTPStatusCode") or 400)
    response = _response(status, meta.get("HTTPHeaders"))
    request_id = meta.get("RequestId")
    kw: dict[str, Any] = {"vendor": SNS, "code": code, "message": text, "request_id": request_id}
    if code in THROTTLING_CODES or status == 429:
        return SnsThrottled(response, **kw)
    if code in _AUTH_CODES:
        return AuthenticationFailed(response, **kw)
    if code == "OptedOut":
        return OptedOut(response, **kw)
    if code in _INVALID_PARAMETER and "phone" in (text or "").lower():
        return PhoneNumberRejected(response, reason="invalid", **kw)
    result = SnsError(response, **kw)
    if code == "InternalError":
        result.transient = True
    return result


def map_exception(exc: BaseException) -> ConnectorError | None:
    """Our error for a botocore/aiobotocore failure, or None when it is not one of theirs."""
    from botocore import exceptions as bx  # noqa: PLC0415 - aioboto3 is an optional extra
    from botocore.parsers import ResponseParserError  # noqa: PLC0415

    if isinstance(exc, ConnectorError):
        return exc
    if isinstance(exc, bx.ClientError):
        return _from_client_error(exc)
    if isinstance(exc, bx.ConnectTimeoutError):
        return RequestTimeout("timed out connecting to SNS", sent=False)
    if isinstance(exc, bx.EndpointConnectionError):
        return ConnectionFailed("could not connect to SNS", sent=False)
    if isinstance(exc, bx.ReadTimeoutError):
        return RequestTimeout("no response from SNS in time")
    if isinstance(exc, bx.NoCredentialsError | bx.PartialCredentialsError):
        return InvalidRequest("no usable AWS credentials found for SNS")
    if isinstance(
        exc,
        bx.CredentialRetrievalError
        | bx.TokenRetrievalError
        | bx.SSOError
        | bx.MetadataRetrievalError
        | bx.RefreshWithMFAUnsupportedError,
    ):
        # A credential provider (assume-role, SSO, IMDS...) failed: nothing was sent.
        return CredentialRefreshError(
            f"AWS credentials could not be obtained: {type(exc).__name__}"
        )
    if isinstance(exc, bx.HTTPClientError | bx.ConnectionError):
        return ConnectionFailed(f"connection to SNS failed: {type(exc).__name__}")
    if isinstance(exc, bx.ParamValidationError):
        return InvalidRequest("SNS refused the parameters before sending (botocore validation)")
    if isinstance(exc, bx.IncompleteReadError | ResponseParserError):
        return SnsClientError(f"SNS answer could not be read: {type(exc).__name__}", sent=True)
    if isinstance(exc, bx.BotoCoreError):
        # Everything else botocore raises happens before a request leaves (region, endpoint,
        # configuration, signing). The class name only: botocore messages may name profiles.
        return SnsClientError(f"botocore could not send to SNS: {type(exc).__name__}")
    return None


def outcome_known_unsent(error: ConnectorError) -> bool:
    """True when SNS certainly did not publish: throttled, refused (4xx), or never sent."""
    if error.throttled or error.sent is False:
        return True
    return not error.transient


def opted_out() -> OptedOut:
    """`OptedOut` for a number our check found opted out: nothing was published."""
    error = OptedOut(
        Response(200, [], b""),
        vendor=SNS,
        code="OptedOut",
        message="the number opted out of SMS from this account; nothing was published",
    )
    error.sent = False
    return error
