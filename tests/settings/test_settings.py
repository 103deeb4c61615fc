"""Settings from the environment and TOML: every problem reported at once, no secret shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from nexus_connector_async import ConfigError, RateLimitConfig, Settings, connect
from nexus_connector_async._settings import _ENV, parse_rate
from nexus_connector_async.adapters import Money
from nexus_connector_async.testing import StripeSimulator

SID = "AC" + "0123456789abcdef" * 2
SECRET = "sk_live_SUPERSECRET123"


def test_a_complete_environment_builds_settings() -> None:
    env = {
        "NEXUS_REDIS_URL": "redis://:pw@127.0.0.1:6379/0",
        "NEXUS_REDIS_CLUSTER": "true",
        "NEXUS_ON_UNAVAILABLE": "local",
        "NEXUS_PAYMENTS": "stripe",
        "NEXUS_SMS": "twilio",
        "STRIPE_API_KEY": SECRET,
        "TWILIO_ACCOUNT_SID": SID,
        "TWILIO_AUTH_TOKEN": "tw-secret-token",
        "TWILIO_FROM_NUMBER": "+14155550100",
        "NEXUS_RATE_LIMIT_STRIPE": "25/s, burst=50, wait=0.5",
        "AWS_DEFAULT_REGION": "eu-west-1",
    }
    s = Settings.from_env(env)
    assert (s.redis_cluster, s.on_unavailable, s.payments, s.sms) == (
        True,
        "local",
        "stripe",
        "twilio",
    )
    assert s.sns_region == "eu-west-1"
    assert s.rate_limits["stripe"] == RateLimitConfig(25.0, 1.0, 50.0, max_wait=0.5)
    text = repr(s) + str(s)
    for secret in (SECRET, "tw-secret-token", ":pw@"):
        assert secret not in text


def test_every_problem_is_listed_together_without_secret_values() -> None:
    env = {
        "NEXUS_PAYMENTS": "paypal",
        "NEXUS_SMS": "twilio",
        "PAYPAL_CLIENT_SECRET": "pp-secret",
        "TWILIO_ACCOUNT_SID": "not-a-sid",
        "NEXUS_RATE_LIMIT_SNS": "lots",
    }
    with pytest.raises(ConfigError) as err:
        Settings.from_env(env)
    problems = err.value.problems
    assert any("PAYPAL_CLIENT_ID" in p for p in problems)
    assert any("TWILIO_AUTH_TOKEN" in p for p in problems)
    assert any("TWILIO_FROM_NUMBER" in p for p in problems)
    assert any("TWILIO_ACCOUNT_SID must be" in p for p in problems)
    assert any("rate limit for 'sns'" in p for p in problems)
    assert "pp-secret" not in str(err.value)


def test_an_unknown_vendor_names_the_variable_not_the_value() -> None:
    with pytest.raises(ConfigError) as err:
        Settings.from_env({"NEXUS_PAYMENTS": "bitcoin-secret-xyz"})
    assert "NEXUS_PAYMENTS" in str(err.value)
    assert "bitcoin-secret-xyz" not in str(err.value)


def test_a_toml_file_is_read_and_the_environment_wins(tmp_path: Path) -> None:
    path = tmp_path / "nexus.toml"
    path.write_text(
        '[nexus]\npayments = "stripe"\nstripe_api_key = "sk_test_fromfile"\n'
        '[nexus.rate_limits]\nstripe = "100/min"\npaypal = { rate = 5, period = 1.0 }\n'
    )
    path.chmod(0o600)  # it holds a key: readable by its owner only
    s = Settings.from_env({"NEXUS_CONFIG": str(path), "STRIPE_API_KEY": "sk_test_fromenv"})
    assert s.stripe_api_key == "sk_test_fromenv"
    assert s.rate_limits["stripe"] == RateLimitConfig.per_minute(100)
    assert s.rate_limits["paypal"] == RateLimitConfig.per_second(5)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("10/s", RateLimitConfig.per_second(10)),
        ("600 / min", RateLimitConfig.per_minute(600)),
        ("1000/hour, burst=20", RateLimitConfig.per_hour(1000, burst=20)),
    ],
)
def test_rate_specs_parse(spec: str, expected: RateLimitConfig) -> None:
    assert parse_rate(spec) == expected


async def test_connect_without_vendors_builds_an_in_memory_connector() -> None:
    async with connect(Settings()) as app:
        assert app.payments is None
        assert app.sms is None
        assert type(app.connector.backend).__name__ == "MemoryBackend"


async def test_connect_builds_the_configured_payment_gateway_and_it_charges() -> None:
    key = "sk_test_factory123"
    async with StripeSimulator(api_key=key) as sim:
        settings = Settings.from_env(
            {"NEXUS_PAYMENTS": "stripe", "STRIPE_API_KEY": key, "STRIPE_BASE_URL": sim.url}
        )
        async with connect(settings) as app:
            payment = await app.payments.charge(Money("12.34", "USD"), "pm_card_visa")
    assert payment.status == "succeeded"
    assert payment.amount == Money("12.34", "USD")


async def test_connect_from_an_empty_environment_says_which_variables_to_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Not `AttributeError: 'NoneType' object has no attribute 'charge'` on first use."""

    for var in [*_ENV.values(), "NEXUS_CONFIG", "AWS_DEFAULT_REGION"]:
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(ConfigError) as caught:
        async with connect():
            pass
    message = str(caught.value)
    for var in ("NEXUS_PAYMENTS", "STRIPE_API_KEY", "NEXUS_SMS", "NEXUS_REDIS_URL"):
        assert var in message


async def test_connect_passes_the_optional_vendor_settings_that_are_set() -> None:
    settings = Settings.from_env(
        {
            "NEXUS_PAYMENTS": "stripe",
            "STRIPE_API_KEY": "sk_test_factory123",
            "STRIPE_API_VERSION": "2025-01-27.acacia",
            "NEXUS_SMS": "twilio",
            "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
            "TWILIO_AUTH_TOKEN": "token",
            "TWILIO_MESSAGING_SERVICE_SID": "MG" + "1" * 32,
        }
    )
    async with connect(settings) as app:
        assert getattr(app.payments, "api_version", None) == "2025-01-27.acacia"
        assert getattr(app.sms, "messaging_service_sid", None) == "MG" + "1" * 32
    async with connect(
        Settings.from_env({"NEXUS_PAYMENTS": "stripe", "STRIPE_API_KEY": "sk_test_x"})
    ) as app:
        # unset: the adapter's own default, not an empty string
        assert getattr(app.payments, "api_version", "") not in ("", None)
