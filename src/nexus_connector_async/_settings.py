"""Configuration from the environment (and optionally a TOML file), and the factory that builds
a `Connector` plus the configured payment and SMS gateways from it.

An app switches vendors by configuration alone: `NEXUS_PAYMENTS=paypal` instead of `stripe`.
Vendor credentials use the names of the vendors' own SDKs (`STRIPE_API_KEY`, `TWILIO_AUTH_TOKEN`,
...); SNS uses AWS's usual credential chain. Problems are collected and reported together, and
no secret value ever appears in an error or a repr.
"""

from __future__ import annotations

import os
import re
import stat
import tomllib
import warnings
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

import msgspec

from ._config import RateLimitConfig
from ._connector import Connector
from ._errors import InvalidRequest
from ._scrub import mask_redis_url

if TYPE_CHECKING:  # the adapters load only when configured: see build_payments / build_sms
    from .adapters._payments import PaymentGateway
    from .adapters._sms import SmsGateway
    from .backends.redis import RedisBackend

__all__ = ["ConfigError", "Gateways", "Settings", "connect"]

_SECRET_FIELDS = frozenset(
    {"stripe_api_key", "paypal_client_secret", "twilio_auth_token", "twilio_api_key_secret"}
)
_ENV = {
    "redis_url": "NEXUS_REDIS_URL",
    "redis_cluster": "NEXUS_REDIS_CLUSTER",
    "redis_prefix": "NEXUS_REDIS_PREFIX",
    "on_unavailable": "NEXUS_ON_UNAVAILABLE",
    "payments": "NEXUS_PAYMENTS",
    "sms": "NEXUS_SMS",
    "stripe_api_key": "STRIPE_API_KEY",
    "stripe_api_version": "STRIPE_API_VERSION",
    "stripe_base_url": "STRIPE_BASE_URL",
    "paypal_client_id": "PAYPAL_CLIENT_ID",
    "paypal_client_secret": "PAYPAL_CLIENT_SECRET",
    "paypal_mode": "PAYPAL_MODE",
    "paypal_base_url": "PAYPAL_BASE_URL",
    "twilio_account_sid": "TWILIO_ACCOUNT_SID",
    "twilio_auth_token": "TWILIO_AUTH_TOKEN",
    "twilio_from_number": "TWILIO_FROM_NUMBER",
    "twilio_messaging_service_sid": "TWILIO_MESSAGING_SERVICE_SID",
    "twilio_base_url": "TWILIO_BASE_URL",
    "sns_region": "AWS_REGION",
    "sns_endpoint_url": "NEXUS_SNS_ENDPOINT_URL",
    "sns_sender_id": "NEXUS_SNS_SENDER_ID",
}
_RATE = re.compile(
    r"^\s*(?P<n>\d+(?:\.\d+)?)\s*/\s*(?P<unit>s|sec|second|m|min|minute|h|hour)\s*"
    r"(?P<opts>(?:,\s*(?:burst|wait)\s*=\s*\d+(?:\.\d+)?\s*)*)$"
)
_PERIODS = {
    "s": 1.0,
    "sec": 1.0,
    "second": 1.0,
    "m": 60.0,
    "min": 60.0,
    "minute": 60.0,
    "h": 3600.0,
    "hour": 3600.0,
}


_NOTHING_CONFIGURED = [
    "no gateway configured: set NEXUS_PAYMENTS=stripe (with STRIPE_API_KEY) or "
    "NEXUS_PAYMENTS=paypal (with PAYPAL_CLIENT_ID and PAYPAL_CLIENT_SECRET), and/or "
    "NEXUS_SMS=twilio (with TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and TWILIO_FROM_NUMBER) or "
    "NEXUS_SMS=sns (with AWS_REGION); NEXUS_REDIS_URL shares state between workers"
]


class ConfigError(InvalidRequest):
    """Missing or malformed settings; `problems` lists every one of them."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid nexus configuration:\n  - " + "\n  - ".join(problems))
        self.problems = problems


def _warn_if_readable(path: Path, raw: Mapping[str, Any]) -> None:
    """Warn when a config file holding secrets can be read by its group or by anyone."""
    url = raw.get("redis_url")
    has_password = isinstance(url, str) and mask_redis_url(url) != url
    if os.name != "posix" or not (has_password or _SECRET_FIELDS.intersection(raw)):
        return
    try:
        mode = path.stat().st_mode
    except OSError:  # pragma: no cover - it was just read
        return
    if mode & 0o077:
        warnings.warn(
            f"{path} holds secrets and is readable by group or others "
            f"(mode {stat.S_IMODE(mode):o}); chmod 600 it",
            RuntimeWarning,
            stacklevel=3,
        )


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Everything needed to build a connector and its gateways; see `Settings.from_env`."""

    redis_url: str | None = None
    redis_cluster: bool = False
    redis_prefix: str = "nexus"
    on_unavailable: Literal["fail_closed", "fail_open", "local"] = "fail_closed"
    payments: Literal["stripe", "paypal"] | None = None
    sms: Literal["twilio", "sns"] | None = None
    stripe_api_key: str | None = None
    stripe_api_version: str | None = None
    stripe_base_url: str | None = None
    paypal_client_id: str | None = None
    paypal_client_secret: str | None = None
    paypal_mode: Literal["sandbox", "live"] = "sandbox"
    paypal_base_url: str | None = None
    twilio_account_sid: str | None = None
    twilio_auth_token: str | None = None
    twilio_from_number: str | None = None
    twilio_messaging_service_sid: str | None = None
    twilio_base_url: str | None = None
    sns_region: str = "us-east-1"
    sns_endpoint_url: str | None = None
    sns_sender_id: str | None = None
    rate_limits: dict[str, RateLimitConfig] = msgspec.field(default_factory=dict)

    def _shown(self) -> Iterator[tuple[str, Any]]:
        """(field, value) pairs with secrets masked: what `repr` and rich's pretty print show."""
        for name in self.__struct_fields__:
            value = getattr(self, name)
            if name in _SECRET_FIELDS and value is not None:
                value = "***"
            elif name == "redis_url" and value:
                value = mask_redis_url(value)
            yield name, value

    def __repr__(self) -> str:
        return f"Settings({', '.join(f'{name}={value!r}' for name, value in self._shown())})"

    def __rich_repr__(self) -> list[tuple[str, Any]]:
        # msgspec's own __rich_repr__ would show every field as it is, secrets included.
        return list(self._shown())

    __str__ = __repr__

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, *, toml_path: str | Path | None = None
    ) -> Settings:
        """Read settings from environment variables, over an optional TOML file.

        The TOML file (`toml_path`, or `NEXUS_CONFIG`) holds the same field names under a
        `[nexus]` table, with `[nexus.rate_limits]` as `stripe = "100/s, burst=200"`. Rate limits
        from the environment: `NEXUS_RATE_LIMIT_<SERVICE>="25/s, burst=50, wait=0.5"`.
        """
        env = os.environ if environ is None else environ
        raw: dict[str, Any] = {}
        problems: list[str] = []
        path = toml_path or env.get("NEXUS_CONFIG")
        if path:
            try:
                raw.update(tomllib.loads(Path(path).read_text()).get("nexus", {}))
            except (OSError, tomllib.TOMLDecodeError) as exc:
                problems.append(f"NEXUS_CONFIG: cannot read {path}: {type(exc).__name__}")
            else:
                _warn_if_readable(Path(path), raw)
        for field, var in _ENV.items():
            name = var
            if field == "sns_region" and var not in env and "AWS_DEFAULT_REGION" in env:
                name = "AWS_DEFAULT_REGION"
            if env.get(name):
                raw[field] = env[name]
        limits: dict[str, Any] = dict(raw.pop("rate_limits", {}) or {})
        for var, value in env.items():
            if var.startswith("NEXUS_RATE_LIMIT_"):
                limits[var.removeprefix("NEXUS_RATE_LIMIT_").lower()] = value
        parsed: dict[str, RateLimitConfig] = {}
        for service, spec in limits.items():
            try:
                parsed[service] = parse_rate(spec)
            except InvalidRequest as exc:
                problems.append(f"rate limit for {service!r}: {exc}")
        if isinstance(raw.get("redis_cluster"), str):
            raw["redis_cluster"] = raw["redis_cluster"].strip().lower() in ("1", "true", "yes")
        settings: Settings | None = None
        try:
            settings = msgspec.convert(raw, cls)
        except msgspec.ValidationError as exc:
            problems.append(_describe(exc))
        if settings is not None:
            settings = msgspec.structs.replace(settings, rate_limits=parsed)
            problems.extend(settings.problems())
        if problems or settings is None:
            raise ConfigError(problems)
        return settings

    def problems(self) -> list[str]:
        """Everything missing for the chosen vendors (names the variables, never values)."""
        out: list[str] = []
        need = {
            "stripe": ["stripe_api_key"],
            "paypal": ["paypal_client_id", "paypal_client_secret"],
            "twilio": ["twilio_account_sid", "twilio_auth_token"],
            "sns": [],
        }
        for vendor in (self.payments, self.sms):
            out.extend(
                f"{_ENV[field]} is required when using {vendor}"
                for field in need.get(vendor or "", [])
                if not getattr(self, field)
            )
        if self.sms == "twilio" and not (
            self.twilio_from_number or self.twilio_messaging_service_sid
        ):
            out.append("TWILIO_FROM_NUMBER or TWILIO_MESSAGING_SERVICE_SID is required for twilio")
        if self.stripe_api_key and not re.match(r"^(sk|rk)_(test|live)_", self.stripe_api_key):
            out.append("STRIPE_API_KEY must be a secret or restricted key (sk_... or rk_...)")
        if self.twilio_account_sid and not re.fullmatch(
            r"AC[0-9a-fA-F]{32}", self.twilio_account_sid
        ):
            out.append("TWILIO_ACCOUNT_SID must be 'AC' followed by 32 hex digits")
        if self.redis_url and not re.match(r"^(redis|rediss|unix)://", self.redis_url):
            out.append("NEXUS_REDIS_URL must start with redis://, rediss:// or unix://")
        return out


def _describe(exc: msgspec.ValidationError) -> str:
    """A validation message naming the variable, without the offending (maybe secret) value."""
    text = re.sub(r"'[^']*'", "<value>", str(exc))
    match = re.search(r"at `\$\.(\w+)`", text)
    if match is None:
        return f"invalid settings: {text.split(' - ', maxsplit=1)[0]}"
    field = match.group(1)
    return f"{_ENV.get(field, field)}: {text.split(' - ', maxsplit=1)[0]}"


def parse_rate(spec: str | Mapping[str, Any]) -> RateLimitConfig:
    """`"25/s"`, `"100/min, burst=150, wait=0.5"` (or a TOML table) to a `RateLimitConfig`."""
    if isinstance(spec, Mapping):
        try:
            return msgspec.convert(spec, RateLimitConfig)
        except msgspec.ValidationError as exc:
            raise InvalidRequest(str(exc).split(" - ")[0]) from None
    match = _RATE.match(spec) if isinstance(spec, str) else None
    if match is None:
        raise InvalidRequest("expected 'N/s', 'N/min' or 'N/hour', optionally ', burst=B, wait=W'")
    pairs = re.findall(r"(burst|wait)\s*=\s*([\d.]+)", match.group("opts"))
    options = {k: float(v) for k, v in pairs}
    return RateLimitConfig(
        float(match.group("n")),
        _PERIODS[match.group("unit")],
        options.get("burst"),
        max_wait=options.get("wait", 0.0),
    )


class Gateways(NamedTuple):
    """What `connect()` builds: the connector and the configured gateways (or None).

    `payments` is a `PaymentGateway` (Stripe or PayPal) and `sms` an `SmsGateway` (Twilio or
    SNS), so code written against them switches vendors by configuration alone.
    """

    connector: Connector
    payments: PaymentGateway | None
    sms: SmsGateway | None


def build_backend(settings: Settings) -> RedisBackend | None:
    """The backend the settings ask for: Redis when `redis_url` is set, else in-memory."""
    if not settings.redis_url:
        return None
    from .backends.redis import RedisBackend  # noqa: PLC0415 - redis is an optional extra

    return RedisBackend.from_url(
        settings.redis_url,
        cluster=settings.redis_cluster,
        prefix=settings.redis_prefix,
        on_unavailable=settings.on_unavailable,
    )


def _given(**options: str | None) -> dict[str, Any]:
    """The options that are set (an unset one leaves the adapter's default in place)."""
    return {name: value for name, value in options.items() if value}


def build_payments(connector: Connector, settings: Settings) -> PaymentGateway | None:
    """The payment gateway named by `settings.payments` (None when unset).

    Each adapter is imported only when configured: the core does not load the adapters.
    """
    limit = settings.rate_limits.get
    if settings.payments == "stripe":
        from .adapters.stripe import StripePaymentAdapter  # noqa: PLC0415 - when configured

        kw = _given(base_url=settings.stripe_base_url, api_version=settings.stripe_api_version)
        return StripePaymentAdapter(
            connector, settings.stripe_api_key or "", rate_limit=limit("stripe"), **kw
        )
    if settings.payments == "paypal":
        from .adapters.paypal import PayPalPaymentAdapter  # noqa: PLC0415 - when configured

        return PayPalPaymentAdapter(
            connector,
            settings.paypal_client_id or "",
            settings.paypal_client_secret or "",
            sandbox=settings.paypal_mode == "sandbox",
            base_url=settings.paypal_base_url,
            rate_limit=limit("paypal"),
        )
    return None


def build_sms(connector: Connector, settings: Settings) -> SmsGateway | None:
    """The SMS gateway named by `settings.sms` (None when unset).

    SNS needs the `sns` extra (aioboto3): without it the first send says which to install.
    """
    limit = settings.rate_limits.get
    if settings.sms == "twilio":
        from .adapters.twilio import TwilioSmsAdapter  # noqa: PLC0415 - when configured

        kw = _given(
            base_url=settings.twilio_base_url,
            messaging_service_sid=settings.twilio_messaging_service_sid,
        )
        return TwilioSmsAdapter(
            connector,
            settings.twilio_account_sid or "",
            settings.twilio_auth_token or "",
            settings.twilio_from_number,
            rate_limit=limit("twilio"),
            **kw,
        )
    if settings.sms == "sns":
        from .adapters.sns import SnsSmsAdapter  # noqa: PLC0415 - when configured

        return SnsSmsAdapter(
            connector,
            region=settings.sns_region,
            endpoint_url=settings.sns_endpoint_url,
            sender_id=settings.sns_sender_id,
            rate_limit=limit("sns"),
        )
    return None


@asynccontextmanager
async def connect(settings: Settings | None = None, **connector_kw: Any) -> AsyncIterator[Gateways]:
    """Build the connector and gateways from `settings` (default: `Settings.from_env()`).

    ```python
    async with connect() as app:
        await app.payments.charge(Money("10.00", "USD"), "pm_card_visa")
    ```

    Read from the environment, settings that name no gateway raise `ConfigError` saying which
    variables to set (a forgotten environment, not an app that wants a bare connector: pass
    `Settings()` for that).
    """
    if settings is None:
        settings = Settings.from_env()
        if settings.payments is None and settings.sms is None:
            raise ConfigError(_NOTHING_CONFIGURED)
    connector = Connector(backend=build_backend(settings), **connector_kw)
    try:
        yield Gateways(
            connector, build_payments(connector, settings), build_sms(connector, settings)
        )
    finally:
        await connector.close()
