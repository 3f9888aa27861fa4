"""The guards' sections: API keys with their scopes and rate limits, and spending budgets."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from router.config.parts import Section

Scope = Literal["route", "feedback", "admin", "metrics"]


class ApiKeyConfig(Section):
    """One client key: only its sha256 is stored (``tier-router hash-key`` makes it)."""

    name: str = Field(min_length=1, max_length=64, description="Who holds it; shown in logs.")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="Hex sha256 of the key.")
    scopes: list[Scope] = Field(min_length=1)
    rate_per_minute: int | None = Field(
        default=None, gt=0, description="At most this many requests in any 60 seconds."
    )
    tokens_per_minute: int | None = Field(
        default=None, gt=0,
        description="At most this many tokens (estimated input plus expected output, corrected "
                    "by feedback) in any 60 seconds of /route calls.",
    )


class AuthConfig(Section):
    """No keys: the service is open, `serve` binds to loopback only, cross-site requests are
    refused and the admin endpoints answer only to loopback clients (router/api/checks.py)."""

    keys: list[ApiKeyConfig] = Field(default_factory=list)
    allow_open_admin: bool = Field(
        default=False, description="Open service only: admin endpoints answer any client, "
                                   "not only loopback ones.")
    public_docs: bool = Field(
        default=True, description="With keys: /docs, /redoc and /openapi.json are served "
                                  "without a key (false: not served).")
    public_metrics: bool = Field(
        default=True, description="With keys: /metrics answers without a key (the scrape "
                                  "convention on a private port); false: a key with the "
                                  "'metrics' scope.")

    @field_validator("keys")
    @classmethod
    def _unique(cls, keys: list[ApiKeyConfig]) -> list[ApiKeyConfig]:
        for attr in ("name", "sha256"):
            values = [getattr(k, attr) for k in keys]
            if len(set(values)) != len(values):
                raise ValueError(f"API key {attr}s must be unique")
        return keys


class BudgetConfig(Section):
    """A spending limit over a calendar period (UTC) for a set of roles, or a set of API keys
    (a team), or, naming neither, for the whole fleet. `role`/`api_key` name a set of one."""

    name: str = Field(min_length=1, max_length=64)
    role: str | None = Field(default=None, min_length=1, max_length=256,
                             description="The request's `role` this budget counts.")
    api_key: str | None = Field(default=None, min_length=1, max_length=64,
                                description="The name of the auth key whose calls it counts.")
    roles: list[str] = Field(default_factory=list, max_length=1000,
                             description="Every call with one of these roles counts.")
    api_keys: list[str] = Field(default_factory=list, max_length=1000,
                                description="Every call made with one of these keys counts.")
    limit_usd: float = Field(gt=0)
    period: Literal["hour", "day", "week", "month"] = "day"
    low_fraction: float = Field(default=0.8, gt=0, le=1, description="'Low' from this share on.")
    low_quality_target: float = Field(
        default=0.5, ge=0, le=1,
        description="The quality_target (same meaning, relative to the best tier) used while "
                    "the budget is low.",
    )

    @model_validator(mode="after")
    def _one_kind_of_subject(self) -> BudgetConfig:
        if self.role_set and self.key_set:
            raise ValueError(f"budget '{self.name}' names roles and API keys; a budget counts "
                             "either roles or keys (or, naming neither, the whole fleet)")
        return self

    @property
    def role_set(self) -> frozenset[str]:
        return frozenset(self.roles) | ({self.role} if self.role is not None else set())

    @property
    def key_set(self) -> frozenset[str]:
        return frozenset(self.api_keys) | ({self.api_key} if self.api_key is not None else set())

    @property
    def subject(self) -> str:
        """What the budget counts, in words: for logs and the 402's detail."""
        if self.role_set:
            return "roles " + ", ".join(sorted(self.role_set))
        if self.key_set:
            return "API keys " + ", ".join(sorted(self.key_set))
        return "the whole fleet"

    def applies_to(self, role: str | None, api_key: str | None) -> bool:
        """Does a call made with this role and this key count against the budget?"""
        if self.role_set:
            return role in self.role_set
        if self.key_set:
            return api_key in self.key_set
        return True
