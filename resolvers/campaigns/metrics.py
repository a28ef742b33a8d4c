"""Campaign.metrics: engagement and spend over time, in buckets of the caller's time zone.

Bucket boundaries are computed here, with the IANA time zone database (zoneinfo): a day is a
calendar day of that zone (23 or 25 hours across a DST change), an hour or a minute an
absolute one starting on the zone's wall clock. A point is a whole bucket: the first one
starts at or before ``from`` and the last one ends at or after ``to``. Empty buckets are
zeros. The database only ever sees UTC instants.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from enum import Enum
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import strawberry

from app.errors import BadUserInput
from app.validation import check_moment, storable_moment
from loaders.postgres.metrics import Window
from resolvers.batching import settle
from resolvers.columns import column
from resolvers.engagement.types import EngagementKind
from resolvers.info import Info

MAX_POINTS = 1000
COUNTERS = tuple(kind.value for kind in EngagementKind)
STEP = {"MINUTE": timedelta(minutes=1), "HOUR": timedelta(hours=1)}


@strawberry.enum
class MetricBucket(Enum):
    MINUTE = "MINUTE"
    HOUR = "HOUR"
    DAY = "DAY"


@strawberry.type(description="Engagement and spend in one bucket of time (zeros if none).")
class MetricPoint:
    """One bucket's sums as the loader read them (or zeros), with the bucket's start: a
    dashboard page is a thousand points or more, so each holds its numbers as one dict and
    the planned executor reads the fields asked for straight from it (resolvers/columns.py),
    rather than every point converting every number into a field of its own first."""

    __slots__ = ("kinds", "row")
    row: strawberry.Private[dict[str, Any]]  # "at", each counter, "spend"
    kinds: strawberry.Private[tuple[str, ...]]  # what `engagement` adds up
    at: datetime = column("at", description="Where the bucket starts.")
    impressions: int = column("impressions")
    clicks: int = column("clicks")
    likes: int = column("likes")
    shares: int = column("shares")
    comments: int = column("comments")
    spend: Decimal = column("spend", description="In the campaign's currency; refunds subtract.")

    @strawberry.field(
        description="The kinds chosen by the field's `kinds` argument added up (all kinds if "
        "none were chosen): the one number a sparkline draws."
    )
    def engagement(self) -> int:
        row = self.row
        return sum(row[kind] for kind in self.kinds)


def zone(name: str) -> ZoneInfo:
    if not name or len(name) > 64 or name.startswith(("/", ".")) or ".." in name:
        raise BadUserInput(f"Unknown time zone {name[:64]!r}", argument="timeZone")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise BadUserInput(
            f"Unknown time zone {name!r}: use an IANA name like Europe/Paris", argument="timeZone"
        ) from exc


def window(
    start: datetime, end: datetime, bucket: MetricBucket, time_zone: str | ZoneInfo
) -> Window:
    try:
        return _window(start, end, bucket, time_zone)
    except OverflowError as exc:  # a bucket edge before year 1 or after 9999 in that zone
        raise BadUserInput(
            "The window reaches outside the supported dates", argument="from"
        ) from exc


def _window(
    start: datetime, end: datetime, bucket: MetricBucket, time_zone: str | ZoneInfo
) -> Window:
    for name, moment in (("from", start), ("to", end)):
        check_moment(name, moment, argument=name)
    if end <= start:
        raise BadUserInput("'to' must be after 'from'", argument="to")
    tz = time_zone if isinstance(time_zone, ZoneInfo) else zone(time_zone)
    local = start.astimezone(tz)
    if bucket is MetricBucket.DAY:
        if (end - start).days > MAX_POINTS + 1:
            raise BadUserInput(f"At most {MAX_POINTS} points per campaign", argument="to")
        boundaries = [datetime.combine(local.date(), time(0), tzinfo=tz)]
        day: date = local.date()
        while boundaries[-1] < end:
            day += timedelta(days=1)
            boundaries.append(datetime.combine(day, time(0), tzinfo=tz))
            if len(boundaries) > MAX_POINTS + 1:
                raise BadUserInput(f"At most {MAX_POINTS} points per campaign", argument="to")
    else:
        step = STEP[bucket.value]
        if (end - start) / step > MAX_POINTS + 1:
            raise BadUserInput(f"At most {MAX_POINTS} points per campaign", argument="to")
        first = local.replace(second=0, microsecond=0)
        if bucket is MetricBucket.HOUR:
            first = first.replace(minute=0)
        # Steps are absolute (an aware datetime adds wall-clock time): counted in UTC, then
        # shown in the zone, so a DST change neither skips nor repeats an hour.
        boundaries = [first.astimezone(UTC)]
        while boundaries[-1] < end:
            boundaries.append(boundaries[-1] + step)
        if len(boundaries) > MAX_POINTS + 1:
            raise BadUserInput(f"At most {MAX_POINTS} points per campaign", argument="to")
    # In UTC: the loader's key compares instants, and so do the points' intervals.
    return Window(tuple(b.astimezone(UTC) for b in boundaries))


def metric_points(arguments: Mapping[str, Any]) -> int | None:
    """How many points Campaign.metrics returns for its arguments as the client sent them
    (``from`` and ``to`` ISO 8601 strings, ``bucket`` an enum name, ``timeZone`` an IANA
    name): its @listSize, priced before the field runs. The count ``window`` comes to,
    without walking the buckets: 0 for a window the field refuses as empty, None when an
    argument cannot be read (the field will refuse it; its assumedSize prices it)."""
    start, end = _moment(arguments.get("from")), _moment(arguments.get("to"))
    bucket = arguments.get("bucket")
    name = bucket.name if isinstance(bucket, MetricBucket) else bucket
    time_zone = arguments.get("timeZone", "UTC")
    if start is None or end is None or not isinstance(name, str):
        return None
    if name not in MetricBucket.__members__ or not isinstance(time_zone, str | None):
        return None
    if end <= start:
        return 0
    try:
        tz = zone("UTC" if time_zone is None else time_zone)
    except BadUserInput:
        return None
    try:
        return _buckets(start, end, MetricBucket[name], tz)
    except (OverflowError, ValueError):  # a bucket edge outside the supported dates
        return None


def _moment(value: object) -> datetime | None:
    """An instant as the client sent it; None unless it is ISO 8601 with an offset."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)  # Python 3.11 reads a trailing Z
        except ValueError:
            return None
    else:
        return None
    return moment if storable_moment(moment) else None


def _buckets(start: datetime, end: datetime, bucket: MetricBucket, tz: ZoneInfo) -> int:
    """``window(start, end, bucket, tz).buckets``, counted in constant time."""
    local, end = start.astimezone(tz), end.astimezone(UTC)  # compared as instants
    if bucket is MetricBucket.DAY:
        # The buckets end at the zone's midnights after the start's date: as many as it
        # takes for one to reach `end`. Guessed from `end`'s own date in the zone, then
        # moved to the first day that does (a DST change or a skipped day moves it by one).
        first = local.date()

        def midnight(days: int) -> datetime:
            return datetime.combine(first + timedelta(days=days), time(0), tzinfo=tz)

        days = max((end.astimezone(tz).date() - first).days, 1)
        while days > 1 and midnight(days - 1) >= end:
            days -= 1
        while midnight(days) < end:
            days += 1
        return days
    step = STEP[bucket.value]
    edge = local.replace(second=0, microsecond=0)
    if bucket is MetricBucket.HOUR:
        edge = edge.replace(minute=0)
    # Absolute steps from the first edge until one reaches `end`: a ceiling division.
    return -((edge.astimezone(UTC) - end) // step)


# An empty bucket's numbers; spend with the two decimals the loader's sums carry.
ZEROS: dict[str, Any] = {**dict.fromkeys(COUNTERS, 0), "spend": Decimal("0.00")}


def points(
    found: dict[int, Any], starts: Sequence[datetime], kinds: tuple[str, ...] = COUNTERS
) -> list[MetricPoint]:
    """One campaign's points: ``found`` by bucket index, ``starts`` each bucket's start in
    the caller's zone (the same for every campaign of a page, so computed once)."""
    out = []
    for i, at in enumerate(starts):
        row = found.get(i)
        if row is None:
            values = {"at": at, **ZEROS}
        else:
            values = {
                "at": at,
                "impressions": row["impressions"],
                "clicks": row["clicks"],
                "likes": row["likes"],
                "shares": row["shares"],
                "comments": row["comments"],
                "spend": row["spend"],
            }
        out.append(MetricPoint(row=values, kinds=kinds))
    return out


async def metrics_many(
    campaigns: Sequence[Any],
    info: Info,
    from_: datetime,
    to: datetime,
    bucket: MetricBucket,
    time_zone: str | None = "UTC",
    kinds: list[EngagementKind] | None = None,
) -> list[Any]:
    """Every campaign of a page over the same window: one statement."""
    tz = zone("UTC" if time_zone is None else time_zone)
    bounds = window(from_, to, bucket, tz)
    chosen = COUNTERS if not kinds else tuple(dict.fromkeys(k.value for k in kinds))
    load = info.context.loaders.metrics_by_campaign.load
    found = await settle([load((c.pk, bounds)) for c in campaigns])
    starts = [bounds.boundaries[i].astimezone(tz) for i in range(bounds.buckets)]
    return [f if isinstance(f, Exception) else points(f, starts, chosen) for f in found]
