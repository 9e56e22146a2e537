"""Telemetry controls: deterministic sampling, and hashing or dropping named fields.

Data volume and privacy are engineering problems of their own: a prediction log with raw
features can hold personal data, and a busy gateway produces more rows than anyone needs.
A :class:`PrivacyPolicy` is applied to each event before it is stored.

Sampling
    ``sample_rates`` maps an event type (``exposure``, ``prediction``, ``outcome``) to the
    share kept, in [0, 1]. The decision is deterministic: the event is kept when
    ``u < rate`` with ``u = first 8 bytes of sha256(key) / 2**64``, where ``key`` is the
    ``event_id`` (default) or the ``unit_id`` (``sample_key="unit_id"``, falling back to
    ``request_id``, then ``event_id``). So a retried event gets the same decision on every
    replica. Sampling exposures by event id thins every unit's exposures independently;
    to keep whole units (what an experiment analysis needs), sample by unit id. Analyses
    must know the rates to scale counts back up: keep the policy with the experiment.
Hashing
    ``hash_fields`` names fields replaced by ``HMAC-SHA256(salt, value)`` in hex (a keyed,
    salted hash: equal inputs still join, the raw value cannot be looked up in a
    precomputed table without the salt). Field paths: ``attributes.<key>`` (exposures),
    ``features.<key>`` (predictions), ``unit_id``, ``request_id``. Hashing ``unit_id``
    keeps joins between tables working as long as every table is hashed with one salt.
Dropping
    ``drop_fields`` names ``attributes.<key>`` and ``features.<key>`` removed before storage.

Example:
    >>> from proving.telemetry.events import ExposureEvent
    >>> policy = PrivacyPolicy(salt="s3cret", hash_fields=["attributes.email"],
    ...                        drop_fields=["attributes.ip"])
    >>> e = ExposureEvent(experiment="x", variant="a", unit_id="u1",
    ...                   attributes={"email": "a@b.c", "ip": "1.2.3.4", "country": "de"})
    >>> out = policy.apply(e)
    >>> sorted(out.attributes), out.attributes["email"] != "a@b.c"
    (['country', 'email'], True)
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from proving.telemetry.events import Event, EventType, ExposureEvent, PredictionEvent

_PATH = re.compile(r"^(attributes|features)\.[^.\s]+$|^(unit_id|request_id)$")


def sample_fraction(key: str) -> float:
    """The uniform number in [0, 1) that a key deterministically maps to."""
    digest = hashlib.sha256(key.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


class PrivacyPolicy(BaseModel):
    """Sampling and field hashing/dropping applied to events before storage.

    Args:
        salt: secret key of the hash; required when ``hash_fields`` is not empty.
        hash_fields: field paths replaced by their keyed hash.
        drop_fields: field paths removed.
        sample_rates: share of each event type kept (absent types: all kept).
        sample_key: what the sampling decision is keyed on.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    salt: str = ""
    hash_fields: list[str] = Field(default_factory=list)
    drop_fields: list[str] = Field(default_factory=list)
    sample_rates: dict[EventType, float] = Field(default_factory=dict)
    sample_key: Literal["event_id", "unit_id"] = "event_id"

    @field_validator("hash_fields", "drop_fields")
    @classmethod
    def _paths(cls, value: list[str]) -> list[str]:
        for path in value:
            if not _PATH.match(path):
                raise ValueError(
                    f"field path {path!r} is not allowed. Fix: use attributes.<key>, "
                    "features.<key>, unit_id or request_id."
                )
        return value

    @field_validator("sample_rates")
    @classmethod
    def _rates(cls, value: dict[EventType, float]) -> dict[EventType, float]:
        for kind, rate in value.items():
            if not 0.0 <= rate <= 1.0:
                raise ValueError(
                    f"sample rate of {kind!r} must be in [0, 1]; got {rate}. "
                    "Fix: use e.g. 0.1 to keep one event in ten."
                )
        return value

    @model_validator(mode="after")
    def _consistent(self) -> PrivacyPolicy:
        if self.hash_fields and not self.salt:
            raise ValueError(
                "hash_fields are set but salt is empty; an unsalted hash of an email or "
                "user id is reversible by lookup. Fix: set salt to a secret string."
            )
        for path in self.drop_fields:
            if path in ("unit_id", "request_id"):
                raise ValueError(
                    f"{path} cannot be dropped: it is the join key of outcomes. "
                    f"Fix: hash it instead (hash_fields: [{path}])."
                )
        return self

    @property
    def active(self) -> bool:
        """Whether the policy changes anything."""
        return bool(self.hash_fields or self.drop_fields or self.sample_rates)

    def hash_value(self, value: Any) -> str:
        """Keyed hash (HMAC-SHA256 with the salt) of a value, as 64 hex characters."""
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
        return hmac.new(self.salt.encode(), text.encode(), hashlib.sha256).hexdigest()

    def keep(self, event: Event) -> bool:
        """The deterministic sampling decision for one event."""
        rate = self.sample_rates.get(event.type)
        if rate is None or rate >= 1.0:
            return True
        key = event.event_id
        if self.sample_key == "unit_id":
            unit = getattr(event, "unit_id", None) or getattr(event, "request_id", None)
            key = unit or event.event_id
        return sample_fraction(key) < rate

    def _mapping(self, name: str, values: dict[str, Any]) -> dict[str, Any]:
        out = dict(values)
        for path in self.drop_fields:
            if path.startswith(name + "."):
                out.pop(path.split(".", 1)[1], None)
        for path in self.hash_fields:
            key = path.split(".", 1)[1] if path.startswith(name + ".") else None
            if key is not None and out.get(key) is not None:
                out[key] = self.hash_value(out[key])
        return out

    def transform(self, event: Event) -> Event:
        """The event with the hashing and dropping applied (sampling not considered)."""
        update: dict[str, Any] = {}
        for name in ("unit_id", "request_id"):
            value = getattr(event, name, None)
            if name in self.hash_fields and value is not None:
                update[name] = self.hash_value(value)
        if isinstance(event, ExposureEvent):
            update["attributes"] = self._mapping("attributes", event.attributes)
        elif isinstance(event, PredictionEvent):
            update["features"] = self._mapping("features", event.features)
        return event.model_copy(update=update) if update else event

    def apply(self, event: Event) -> Event | None:
        """The transformed event, or None when sampling leaves it out."""
        if not self.keep(event):
            return None
        return self.transform(event) if (self.hash_fields or self.drop_fields) else event


__all__ = ["PrivacyPolicy", "sample_fraction"]
