"""Engagement and spend over time: committed events added to per-minute rows exactly once,
read back in buckets of the caller's time zone, one statement for a whole page."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from httpx import AsyncClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.errors import BadUserInput
from app.ids import decode_id
from app.metrics.consumer import apply_once
from resolvers.campaigns.metrics import MetricBucket, window
from tests.support import TenantClient, count_statements, error_codes, new_tenant, settle_metrics

CREATE = """mutation { createCampaign(input: {name: "Measured", budget: "1000"}) {
  campaign { id } } }"""
ENGAGE = """mutation($id: ID!, $kind: EngagementKind!, $n: Int!) {
  recordEngagement(input: {campaignId: $id, kind: $kind, count: $n}) { engagement { clicks } } }"""
SPEND = """mutation($id: ID!, $kind: TransactionKind!, $amount: Decimal!, $key: String!) {
  recordTransaction(input: {campaignId: $id, kind: $kind, amount: $amount, idempotencyKey: $key}) {
    transaction { id } } }"""
METRICS = """query($id: ID!, $from: DateTime!, $to: DateTime!, $bucket: MetricBucket!, $tz: String) {
  campaign(id: $id) { metrics(from: $from, to: $to, bucket: $bucket, timeZone: $tz) {
    at impressions clicks likes shares comments spend } } }"""


async def new_campaign(tenant: TenantClient) -> str:
    campaign_id: str = (await tenant.data(CREATE))["createCampaign"]["campaign"]["id"]
    return campaign_id


def hour_window() -> dict[str, str]:
    now = datetime.now(UTC)
    start = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
    return {"from": start.isoformat(), "to": (start + timedelta(hours=3)).isoformat()}


async def test_events_land_in_their_hour_once_and_empty_hours_are_zeros(
    tenant: TenantClient, engine: AsyncEngine
) -> None:
    campaign_id = await new_campaign(tenant)
    await tenant.data(ENGAGE, {"id": campaign_id, "kind": "CLICK", "n": 3})
    await tenant.data(ENGAGE, {"id": campaign_id, "kind": "LIKE", "n": 2})
    await tenant.data(ENGAGE, {"id": campaign_id, "kind": "CLICK", "n": 4})
    for kind, amount in (("SPEND", "40.00"), ("SPEND", "2.50"), ("REFUND", "10")):
        await tenant.data(
            SPEND, {"id": campaign_id, "kind": kind, "amount": amount, "key": uuid.uuid4().hex}
        )
    # Several consumers at once, and passes after everything is applied: nothing twice.
    await asyncio.gather(*(settle_metrics(engine) for _ in range(3)))
    await settle_metrics(engine)
    variables: dict[str, Any] = {"id": campaign_id, "bucket": "HOUR", **hour_window()}
    points = (await tenant.data(METRICS, variables))["campaign"]["metrics"]
    assert len(points) == 3
    assert [p["clicks"] for p in points] == [0, 0, 7]
    assert [p["likes"] for p in points] == [0, 0, 2]
    assert [p["spend"] for p in points] == ["0.00", "0.00", "32.50"]
    assert points[0]["impressions"] == 0 and points[0]["comments"] == 0
    starts = [datetime.fromisoformat(p["at"]) for p in points]
    assert starts[1] - starts[0] == timedelta(hours=1)
    assert starts[0] == datetime.fromisoformat(variables["from"])


async def test_engagement_adds_up_the_chosen_kinds_and_every_kind_by_default(
    tenant: TenantClient, engine: AsyncEngine
) -> None:
    campaign_id = await new_campaign(tenant)
    for kind, n in (("CLICK", 3), ("LIKE", 2), ("IMPRESSION", 40)):
        await tenant.data(ENGAGE, {"id": campaign_id, "kind": kind, "n": n})
    await settle_metrics(engine)
    query = """query($id: ID!, $from: DateTime!, $to: DateTime!, $kinds: [EngagementKind!]) {
      campaign(id: $id) {
        chosen: metrics(from: $from, to: $to, bucket: HOUR, kinds: $kinds) { engagement clicks }
        every: metrics(from: $from, to: $to, bucket: HOUR) { engagement } } }"""
    variables: dict[str, Any] = {"id": campaign_id, "kinds": ["CLICK", "LIKE", "CLICK"]}
    found = (await tenant.data(query, {**variables, **hour_window()}))["campaign"]
    assert [p["engagement"] for p in found["chosen"]] == [0, 0, 5]
    assert [p["clicks"] for p in found["chosen"]] == [0, 0, 3]
    assert [p["engagement"] for p in found["every"]] == [0, 0, 45]


async def test_day_buckets_follow_the_callers_time_zone(
    tenant: TenantClient, engine: AsyncEngine
) -> None:
    campaign_id = await new_campaign(tenant)
    await tenant.data(ENGAGE, {"id": campaign_id, "kind": "SHARE", "n": 5})
    await settle_metrics(engine)
    tokyo = ZoneInfo("Asia/Tokyo")
    today = datetime.now(tokyo).replace(hour=0, minute=0, second=0, microsecond=0)
    variables = {
        "id": campaign_id,
        "bucket": "DAY",
        "tz": "Asia/Tokyo",
        "from": (today - timedelta(days=6)).isoformat(),
        "to": (today + timedelta(days=1)).isoformat(),
    }
    points = (await tenant.data(METRICS, variables))["campaign"]["metrics"]
    assert len(points) == 7
    assert all(p["at"].endswith("T00:00:00+09:00") for p in points), points
    assert [p["shares"] for p in points] == [0] * 6 + [5]


def test_a_day_is_a_calendar_day_of_the_zone_across_a_dst_change() -> None:
    paris = ZoneInfo("Europe/Paris")
    bounds = window(
        datetime(2026, 3, 28, tzinfo=paris),
        datetime(2026, 3, 31, tzinfo=paris),
        MetricBucket.DAY,
        "Europe/Paris",
    )
    lengths = [b - a for a, b in zip(bounds.boundaries, bounds.boundaries[1:], strict=False)]
    assert lengths == [timedelta(hours=24), timedelta(hours=23), timedelta(hours=24)]
    # Hours are absolute: the night the clocks go back has 25 of them.
    autumn = window(
        datetime(2026, 10, 25, tzinfo=paris),
        datetime(2026, 10, 26, tzinfo=paris),
        MetricBucket.HOUR,
        "Europe/Paris",
    )
    assert autumn.buckets == 25
    assert {b - a for a, b in zip(autumn.boundaries, autumn.boundaries[1:], strict=False)} == {
        timedelta(hours=1)
    }
    kolkata = window(
        datetime(2026, 1, 1, 10, 45, tzinfo=UTC),
        datetime(2026, 1, 1, 12, tzinfo=UTC),
        MetricBucket.HOUR,
        "Asia/Kolkata",
    )
    # Hours start on Kolkata's wall clock, half past the UTC hour.
    assert kolkata.boundaries[0] == datetime(2026, 1, 1, 10, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("changes", "argument"),
    [
        ({"tz": "Mars/Olympus"}, "timeZone"),
        ({"tz": "../../etc/passwd"}, "timeZone"),
        ({"tz": ""}, "timeZone"),
        ({"bucket": "MINUTE", "from": "2026-01-01T00:00:00Z", "to": "2026-01-02T00:00:00Z"}, "to"),
        ({"from": "2026-01-02T00:00:00Z", "to": "2026-01-01T00:00:00Z"}, "to"),
        ({"from": "0001-01-01T00:00:00+14:00"}, "from"),  # year 0 in UTC
        ({"to": "2026-01-02T00:00:00"}, "to"),  # no zone
    ],
)
async def test_a_bad_window_is_bad_user_input(
    tenant: TenantClient, changes: dict[str, str], argument: str
) -> None:
    campaign_id = await new_campaign(tenant)
    variables = {"id": campaign_id, "bucket": "HOUR", "tz": "UTC", **hour_window(), **changes}
    body = await tenant.gql(METRICS, variables)
    assert error_codes(body) == ["BAD_USER_INPUT"], body
    assert body["errors"][0]["extensions"].get("argument") == argument, body


@pytest.mark.parametrize(
    ("start", "end", "zone_name"),
    [
        (datetime(1, 1, 1, tzinfo=UTC), datetime(1, 1, 1, 5, tzinfo=UTC), "America/New_York"),
        (
            datetime(9999, 12, 31, 20, tzinfo=UTC),
            datetime(9999, 12, 31, 23, tzinfo=UTC),
            "Asia/Tokyo",
        ),
    ],
)
def test_a_window_at_the_edge_of_time_is_bad_user_input(
    start: datetime, end: datetime, zone_name: str
) -> None:
    with pytest.raises(BadUserInput):
        window(start, end, MetricBucket.HOUR, zone_name)


def test_a_thousand_points_are_allowed_and_one_more_is_not() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    assert (
        window(start, start + timedelta(minutes=1000), MetricBucket.MINUTE, "UTC").buckets == 1000
    )
    with pytest.raises(BadUserInput):
        window(start, start + timedelta(minutes=1002), MetricBucket.MINUTE, "UTC")


async def test_metrics_of_5_and_50_campaigns_are_one_statement(
    engine: AsyncEngine, http: AsyncClient
) -> None:
    tenant = await new_tenant(engine, http)
    for _ in range(50):
        campaign_id = await new_campaign(tenant)
        await tenant.data(ENGAGE, {"id": campaign_id, "kind": "IMPRESSION", "n": 1})
    await settle_metrics(engine)
    query = """query($first: Int!, $from: DateTime!, $to: DateTime!) {
      campaigns(first: $first) { edges { node {
        metrics(from: $from, to: $to, bucket: HOUR) { impressions } } } } }"""
    for size in (5, 50):
        with count_statements(engine) as sql:
            data = await tenant.data(query, {"first": size, **hour_window()})
        nodes = [e["node"] for e in data["campaigns"]["edges"]]
        assert len(nodes) == size
        assert all(sum(p["impressions"] for p in n["metrics"]) == 1 for n in nodes)
        assert sql.count == 2, sql.statements  # the page and the metrics


async def test_the_buckets_equal_the_committed_events_after_any_number_of_passes(
    tenant: TenantClient, engine: AsyncEngine
) -> None:
    campaign_id = await new_campaign(tenant)
    await asyncio.gather(
        *(
            tenant.data(ENGAGE, {"id": campaign_id, "kind": "COMMENT", "n": i + 1})
            for i in range(20)
        ),
        settle_metrics(engine),
    )
    await settle_metrics(engine)
    async with engine.connect() as conn:
        committed = await conn.scalar(
            text(
                "SELECT sum((payload->>'count')::int) FROM outbox WHERE tenant_id = :t "
                "AND event_type = 'ENGAGEMENT' AND aggregate_id = :c"
            ),
            {"t": tenant.id, "c": decode_id(campaign_id, "Campaign")},
        )
        bucketed = await conn.scalar(
            text(
                "SELECT sum(comments) FROM campaign_metric WHERE tenant_id = :t "
                "AND campaign_id = :c"
            ),
            {"t": tenant.id, "c": decode_id(campaign_id, "Campaign")},
        )
    assert committed == sum(range(1, 21))
    assert bucketed == committed


UPSERT_MINUTE = text(
    "INSERT INTO campaign_metric (tenant_id, campaign_id, minute) VALUES (:t, :c, :m)"
    " ON CONFLICT (tenant_id, campaign_id, minute) DO UPDATE SET clicks = campaign_metric.clicks"
)
WAITING_CONSUMERS = text(
    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
    " AND datname = current_database()"
    " AND query ILIKE 'INSERT INTO campaign_metric%'"
)


async def test_metrics_consumers_take_minutes_in_one_order_so_two_never_deadlock(
    tenant: TenantClient, engine: AsyncEngine
) -> None:
    """Another transaction (another instance's consumer) holds the lower campaign's minute;
    a batch whose events name the higher campaign first must wait for it without taking the
    higher one meanwhile. Taken in event order, it held the higher minute while it waited,
    and two consumers deadlocked (three instances under load, tests/api/test_many_instances.py).
    """
    created = [await new_campaign(tenant) for _ in range(2)]
    lower, higher = sorted(created, key=lambda c: decode_id(c, "Campaign"))
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    minutes = (now, now + timedelta(minutes=1))  # the events' minute, whichever side of a tick
    async with engine.connect() as holder:
        await holder.begin()
        for minute in minutes:
            await holder.execute(
                UPSERT_MINUTE, {"t": tenant.id, "c": decode_id(lower, "Campaign"), "m": minute}
            )
        await tenant.data(ENGAGE, {"id": higher, "kind": "CLICK", "n": 1})
        await tenant.data(ENGAGE, {"id": lower, "kind": "CLICK", "n": 2})
        # This pass, or the app's own consumer's, takes the batch and waits on our minute.
        consumer = asyncio.create_task(apply_once(engine))
        async with asyncio.timeout(10):
            while True:  # (asked outside our transaction, which would see one snapshot)
                async with engine.connect() as looker:
                    if await looker.scalar(WAITING_CONSUMERS):
                        break
                await asyncio.sleep(0.05)
        # The higher campaign's minutes must be free: a consumer holding one would make us
        # wait (and, without this bound, deadlock).
        await holder.execute(text("SET LOCAL lock_timeout = '500ms'"))
        for minute in minutes:
            await holder.execute(
                UPSERT_MINUTE, {"t": tenant.id, "c": decode_id(higher, "Campaign"), "m": minute}
            )
        await holder.commit()
    await consumer
    await settle_metrics(engine)
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT campaign_id, sum(clicks) AS clicks FROM campaign_metric"
                " WHERE tenant_id = :t GROUP BY campaign_id"
            ),
            {"t": tenant.id},
        )
        clicks = {row.campaign_id: row.clicks for row in rows}
    assert clicks == {decode_id(lower, "Campaign"): 2, decode_id(higher, "Campaign"): 1}
