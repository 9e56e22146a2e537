"""Telemetry controls: deterministic sampling, keyed hashing and dropping of fields."""

from __future__ import annotations

import hashlib
import hmac

import numpy as np
import pytest
from pydantic import ValidationError
from scipy import stats

from proving.telemetry.events import ExposureEvent, OutcomeEvent, PredictionEvent
from proving.telemetry.privacy import PrivacyPolicy, sample_fraction


def exposure(i: int = 0, **attributes: object) -> ExposureEvent:
    return ExposureEvent(
        event_id=f"e{i}",
        experiment="x",
        variant="a",
        unit_id=f"u{i % 100}",
        attributes=attributes,  # type: ignore[arg-type]
    )


def test_hash_is_hmac_sha256_with_the_salt() -> None:
    policy = PrivacyPolicy(salt="pepper", hash_fields=["attributes.email", "unit_id"])
    out = policy.apply(exposure(7, email="a@b.c", country="de"))
    assert out is not None and isinstance(out, ExposureEvent)
    expected = hmac.new(b"pepper", b"a@b.c", hashlib.sha256).hexdigest()
    assert out.attributes == {"email": expected, "country": "de"}
    assert out.unit_id == hmac.new(b"pepper", b"u7", hashlib.sha256).hexdigest()
    # Same input, same hash (joins still work); another salt, another hash.
    assert policy.apply(exposure(7, email="a@b.c")).attributes["email"] == expected  # type: ignore[union-attr]
    other = PrivacyPolicy(salt="salt", hash_fields=["attributes.email"])
    assert other.apply(exposure(7, email="a@b.c")).attributes["email"] != expected  # type: ignore[union-attr]


def test_outcome_unit_ids_hash_like_exposures() -> None:
    policy = PrivacyPolicy(salt="k", hash_fields=["unit_id", "request_id"])
    e = policy.apply(exposure(3))
    o = policy.apply(OutcomeEvent(unit_id="u3", request_id="r", name="buy"))
    assert e is not None and o is not None
    assert e.unit_id == o.unit_id != "u3"  # type: ignore[union-attr]
    assert o.request_id == hmac.new(b"k", b"r", hashlib.sha256).hexdigest()  # type: ignore[union-attr]


def test_features_are_hashed_and_dropped() -> None:
    policy = PrivacyPolicy(salt="s", hash_fields=["features.zip"], drop_fields=["features.ssn"])
    p = PredictionEvent(
        request_id="r",
        deployment="d",
        model="m",
        model_version="1",
        latency_ms=1,
        features={"zip": 10115, "ssn": "123", "age": 40, "none": None},
    )
    out = policy.apply(p)
    assert isinstance(out, PredictionEvent)
    assert out.features == {
        "zip": hmac.new(b"s", b"10115", hashlib.sha256).hexdigest(),
        "age": 40,
        "none": None,
    }
    assert p.features["ssn"] == "123"  # the input event is not mutated


def test_sampling_is_deterministic_and_unbiased() -> None:
    policy = PrivacyPolicy(sample_rates={"exposure": 0.2})
    decisions = [policy.keep(exposure(i)) for i in range(20_000)]
    assert decisions == [policy.keep(exposure(i)) for i in range(20_000)]
    kept = sum(decisions)
    # Two-sided binomial test at 1e-4: the hash behaves like a fair coin of p = 0.2.
    assert stats.binomtest(kept, 20_000, 0.2).pvalue > 1e-4
    # Other types are not sampled.
    assert policy.keep(OutcomeEvent(unit_id="u", name="n"))


def test_sample_fraction_is_uniform() -> None:
    u = np.array([sample_fraction(f"id-{i}") for i in range(5000)])
    assert stats.kstest(u, "uniform").pvalue > 1e-4
    digest = hashlib.sha256(b"id-0").digest()
    assert u[0] == int.from_bytes(digest[:8], "big") / 2**64


def test_sampling_by_unit_keeps_whole_units() -> None:
    policy = PrivacyPolicy(sample_rates={"exposure": 0.5}, sample_key="unit_id")
    by_unit: dict[str, set[bool]] = {}
    for i in range(2000):
        e = exposure(i)
        by_unit.setdefault(e.unit_id, set()).add(policy.keep(e))
    assert all(len(d) == 1 for d in by_unit.values())  # all or nothing per unit
    assert 25 < sum(True in d for d in by_unit.values()) < 75


def test_rate_zero_and_one() -> None:
    assert PrivacyPolicy(sample_rates={"exposure": 0.0}).apply(exposure()) is None
    e = exposure()
    assert PrivacyPolicy(sample_rates={"exposure": 1.0}).apply(e) is e
    assert not PrivacyPolicy().active


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"hash_fields": ["attributes.email"]}, r"salt is empty.*Fix: set salt"),
        ({"drop_fields": ["email"]}, r"field path 'email' is not allowed.*attributes.<key>"),
        ({"drop_fields": ["unit_id"]}, r"unit_id cannot be dropped.*Fix: hash it instead"),
        (
            {"sample_rates": {"exposure": 1.5}},
            r"sample rate of 'exposure' must be in \[0, 1\]; got 1.5",
        ),
        ({"sample_rates": {"click": 0.5}}, r"sample_rates.click"),
        ({"salt": "s", "bogus": 1}, r"bogus"),
    ],
)
def test_bad_policies_explain_the_fix(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        PrivacyPolicy(**kwargs)  # type: ignore[arg-type]
