"""The shared-state section: where replicas count limits and spend together (Redis)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from router.config.parts import Section

OnUnavailable = Literal["local", "refuse"]


class SharedStateConfig(Section):
    """Without this section every process counts alone (today's behaviour); with it, requests
    and tokens per minute and budget spend are counted in one Redis for every replica."""

    url: str = Field(pattern=r"^(redis|rediss|unix)://", max_length=1000,
                     description="redis://host:port/db (rediss:// for TLS, unix:// a socket).")
    on_unavailable: OnUnavailable = Field(
        default="local",
        description="Redis unreachable: 'local' keeps routing under per-process limits (N "
                    "replicas may then spend up to N times a budget); 'refuse' answers 429.")
    timeout_s: float = Field(default=0.25, gt=0, le=10,
                             description="Connect and read timeout of one round trip.")
    retry_s: float = Field(default=1.0, gt=0, le=300,
                           description="After a failure, Redis is tried again after this long.")
    prefix: str = Field(default="tier-router:", max_length=64,
                        description="Prefix of every key, so deployments can share one Redis.")
