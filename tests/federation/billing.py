"""A second subgraph for the federation test: a small billing service another team might own.

It extends Chimera's ``Campaign`` entity with an ``invoice`` (the gateway asks Chimera for the
campaign, then this service for its invoice) and has invoices of its own that reference a
``Campaign`` and the ``Agent`` who prepared them (the gateway asks this service for the
invoices, then Chimera's ``_entities`` for the campaigns and agents). Which campaigns have
invoices is set by the test.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import strawberry
from strawberry.asgi import GraphQL
from strawberry.federation.schema_directives import Key
from strawberry.federation.types import FieldSet


@dataclass(frozen=True)
class Billed:
    number: str
    campaign_id: str
    agent_id: str
    amount_cents: int


@dataclass
class Ledger:
    invoices: list[Billed] = field(default_factory=list)


LEDGER = Ledger()


@strawberry.federation.type(keys=[Key(fields=FieldSet("id"), resolvable=False)])
class Agent:
    id: strawberry.ID


@strawberry.type
class Invoice:
    number: str
    amount_cents: int
    campaign: Campaign | None
    prepared_by: Agent | None


@strawberry.federation.type(keys=["id"])
class Campaign:
    id: strawberry.ID

    @strawberry.field
    def invoice(self) -> Invoice | None:
        for billed in LEDGER.invoices:
            if billed.campaign_id == self.id:
                return _invoice(billed)
        return None

    @classmethod
    def resolve_reference(cls, id: strawberry.ID) -> Campaign:
        return cls(id=id)


def _invoice(billed: Billed) -> Invoice:
    return Invoice(
        number=billed.number,
        amount_cents=billed.amount_cents,
        campaign=Campaign(id=strawberry.ID(billed.campaign_id)),
        prepared_by=Agent(id=strawberry.ID(billed.agent_id)),
    )


@strawberry.type
class Query:
    @strawberry.field
    def invoices(self) -> list[Invoice]:
        return [_invoice(billed) for billed in LEDGER.invoices]


schema = strawberry.federation.Schema(query=Query, federation_version="2.5")
app = GraphQL(schema, graphql_ide=None)
