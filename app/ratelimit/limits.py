"""A tenant's demand-control limits: the settings' defaults, overridden by its row."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from app.settings import Settings


@dataclass(frozen=True, slots=True)
class Limits:
    max_cost: int
    tenant_capacity: int
    tenant_per_second: float
    client_capacity: int
    client_per_second: float

    @property
    def operation_maximum(self) -> int:
        """What one operation may cost: no more than either bucket can ever hold."""
        return min(self.max_cost, self.tenant_capacity, self.client_capacity)


def default_limits(settings: Settings) -> Limits:
    return Limits(
        max_cost=settings.max_cost,
        tenant_capacity=settings.tenant_rate_capacity,
        tenant_per_second=settings.tenant_rate_per_second,
        client_capacity=settings.client_rate_capacity,
        client_per_second=settings.client_rate_per_second,
    )


def tenant_limits(defaults: Limits, row: Mapping[str, Any]) -> Limits:
    """The limits a tenant row sets, each null column falling back to the default."""

    def pick(column: str, default: Any) -> Any:
        value = row.get(column)
        return default if value is None else value

    return Limits(
        max_cost=int(pick("max_cost", defaults.max_cost)),
        tenant_capacity=int(pick("rate_capacity", defaults.tenant_capacity)),
        tenant_per_second=float(pick("rate_per_second", defaults.tenant_per_second)),
        client_capacity=int(pick("client_rate_capacity", defaults.client_capacity)),
        client_per_second=float(pick("client_rate_per_second", defaults.client_per_second)),
    )
