"""SigV4Presigner must produce exactly botocore's URLs, so it can be swapped in without risk.

botocore is the reference: each test signs the same request with botocore's S3 client at the
same frozen time (botocore reads the clock through ``botocore.auth.get_current_datetime``) and
compares the URLs byte for byte.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Literal
from unittest import mock

import botocore.session
import pytest
from botocore.config import Config
from hypothesis import given, settings
from hypothesis import strategies as st

from app.stores.objects.sigv4 import MAX_EXPIRES_IN, SigV4Presigner

ACCESS_KEY = "AKIAIOSFODNN7EXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
# Real session tokens are base64: '/', '+' and '=' all need quoting in the query.
SESSION_TOKEN = "IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQD+abc/def=="
NOW = datetime(2024, 2, 29, 13, 14, 15, 987654, tzinfo=UTC)

Style = Literal["path", "virtual"]

REGIONS = ["us-east-1", "eu-west-1", "ap-southeast-2"]
STYLES: list[Style] = ["path", "virtual"]
TOKENS = [None, SESSION_TOKEN]
EXPIRIES = [1, 900, MAX_EXPIRES_IN]
# An IP endpoint (how moto and MinIO run) makes botocore fall back to path style even when
# virtual is asked for; a DNS endpoint with a default port and a path prefix exercises the
# other branches of its endpoint rules.
ENDPOINTS = ["http://127.0.0.1:9000", "https://S3.Example.com:443/storage/"]
# A dotted bucket is virtual-hosted over http but path-style over https.
BUCKETS = ["media-bucket", "media.bucket.v2"]
KEYS = [
    "tenants/t1/media/x/photo.jpg",
    "tenants/t1/media/x/photo 1 (final).jpg",
    "tenants/t1/media/x/café façade ☕.png",
    "a+b=c&d;e,f?g#h!i*j'k(l)m~n",
    "/leading/slash.txt",
    "double//slash///x",
    "./dots/../not-normalized/.",
    "percent%20already%2Fencoded",
    "日本語/ファイル名.txt",
    "tabs\tand\nnewlines\x00",
]
# method -> (botocore operation, content type)
METHODS: dict[str, tuple[str, str | None]] = {
    "GET": ("get_object", None),
    "HEAD": ("head_object", None),
    "DELETE": ("delete_object", None),
    "PUT": ("put_object", "image/png"),
}


@functools.cache
def _client(region: str, endpoint: str, style: Style, token: str | None) -> Any:
    """One botocore client per configuration: building one takes tens of milliseconds."""
    return botocore.session.Session().create_client(
        "s3",
        region_name=region,
        endpoint_url=endpoint,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        aws_session_token=token,
        config=Config(signature_version="s3v4", s3={"addressing_style": style}),
    )


def botocore_url(
    *,
    region: str,
    endpoint: str,
    style: Style,
    token: str | None,
    method: str,
    bucket: str,
    key: str,
    expires_in: int,
    now: datetime,
    content_type: str | None = None,
) -> str:
    operation = METHODS[method][0]
    params = {"Bucket": bucket, "Key": key}
    if content_type is not None:
        params["ContentType"] = content_type
    frozen = now.astimezone(UTC).replace(tzinfo=None)
    with mock.patch("botocore.auth.get_current_datetime", return_value=frozen):
        url: str = _client(region, endpoint, style, token).generate_presigned_url(
            operation, Params=params, ExpiresIn=expires_in
        )
    return url


def presigner(region: str, endpoint: str, style: Style, token: str | None) -> SigV4Presigner:
    return SigV4Presigner(
        ACCESS_KEY,
        SECRET_KEY,
        region,
        endpoint,
        addressing_style=style,
        session_token=token,
    )


def _pairs(
    region: str, endpoint: str, style: Style, token: str | None, method: str
) -> Iterator[tuple[str, str]]:
    ours = presigner(region, endpoint, style, token)
    content_type = METHODS[method][1]
    for bucket in BUCKETS:
        for key in KEYS:
            for expires_in in EXPIRIES:
                theirs = botocore_url(
                    region=region,
                    endpoint=endpoint,
                    style=style,
                    token=token,
                    method=method,
                    bucket=bucket,
                    key=key,
                    expires_in=expires_in,
                    now=NOW,
                    content_type=content_type,
                )
                mine = ours.presign(
                    method, bucket, key, expires_in, now=NOW, content_type=content_type
                )
                yield mine, theirs


@pytest.mark.parametrize("method", list(METHODS))
@pytest.mark.parametrize("token", TOKENS, ids=["no-token", "session-token"])
@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=["ip", "dns"])
@pytest.mark.parametrize("region", REGIONS)
def test_urls_are_byte_identical_to_botocore(
    region: str, endpoint: str, style: Style, token: str | None, method: str
) -> None:
    for mine, theirs in _pairs(region, endpoint, style, token, method):
        assert mine == theirs


def test_put_signs_content_type_as_a_header_like_botocore() -> None:
    url = presigner("eu-west-1", "https://s3.example.com", "path", None).presign(
        "PUT", "media-bucket", "a.png", 900, now=NOW, content_type="image/png"
    )
    assert "X-Amz-SignedHeaders=content-type%3Bhost" in url
    # The type travels as a header the uploader sends, never in the URL.
    assert "image" not in url


@pytest.mark.parametrize(
    "content_type", ["image/png", "  text/plain;   charset=utf-8 ", "application/octet-stream"]
)
def test_put_content_types_match_botocore(content_type: str) -> None:
    ours = presigner("eu-west-1", "https://s3.example.com", "virtual", None)
    mine = ours.presign("PUT", "media-bucket", "a b.bin", 60, now=NOW, content_type=content_type)
    theirs = botocore_url(
        region="eu-west-1",
        endpoint="https://s3.example.com",
        style="virtual",
        token=None,
        method="PUT",
        bucket="media-bucket",
        key="a b.bin",
        expires_in=60,
        now=NOW,
        content_type=content_type,
    )
    assert mine == theirs


def test_put_without_content_type_signs_only_host() -> None:
    ours = presigner("us-east-1", "http://127.0.0.1:9000", "path", None)
    mine = ours.presign("PUT", "media-bucket", "raw.bin", 900, now=NOW)
    theirs = botocore_url(
        region="us-east-1",
        endpoint="http://127.0.0.1:9000",
        style="path",
        token=None,
        method="PUT",
        bucket="media-bucket",
        key="raw.bin",
        expires_in=900,
        now=NOW,
    )
    assert mine == theirs
    assert "X-Amz-SignedHeaders=host&" in mine


keys = st.text(alphabet=st.characters(exclude_categories=["Cs"]), min_size=1, max_size=200)


@settings(max_examples=200, deadline=None)
@given(
    key=keys,
    style=st.sampled_from(STYLES),
    method=st.sampled_from(list(METHODS)),
    region=st.sampled_from(REGIONS),
)
def test_any_key_matches_botocore(key: str, style: Style, method: str, region: str) -> None:
    content_type = METHODS[method][1]
    endpoint = "https://s3.example.com"
    mine = presigner(region, endpoint, style, SESSION_TOKEN).presign(
        method, "media-bucket", key, 3600, now=NOW, content_type=content_type
    )
    theirs = botocore_url(
        region=region,
        endpoint=endpoint,
        style=style,
        token=SESSION_TOKEN,
        method=method,
        bucket="media-bucket",
        key=key,
        expires_in=3600,
        now=NOW,
        content_type=content_type,
    )
    assert mine == theirs


def test_cached_signing_key_rolls_over_at_midnight_utc() -> None:
    """One presigner across midnight: the day's key must change with the date in the scope."""
    ours = presigner("eu-west-1", "http://127.0.0.1:9000", "path", None)
    before = datetime(2024, 12, 31, 23, 59, 59, tzinfo=UTC)
    after = before + timedelta(seconds=1)
    # Midnight UTC is 01:00 in Paris: the date that counts is the UTC one.
    paris_after = after.astimezone(timezone(timedelta(hours=1)))
    dates = []
    for now in (before, after, before, paris_after):
        mine = ours.presign("GET", "media-bucket", "k.txt", 900, now=now)
        theirs = botocore_url(
            region="eu-west-1",
            endpoint="http://127.0.0.1:9000",
            style="path",
            token=None,
            method="GET",
            bucket="media-bucket",
            key="k.txt",
            expires_in=900,
            now=now,
        )
        assert mine == theirs
        match = re.search(r"X-Amz-Credential=[^&]*?%2F(\d{8})%2F", mine)
        assert match is not None
        dates.append(match.group(1))
    assert dates == ["20241231", "20250101", "20241231", "20250101"]


def test_default_time_is_now() -> None:
    ours = presigner("eu-west-1", "http://127.0.0.1:9000", "path", None)
    start = datetime.now(UTC).replace(microsecond=0)
    url = ours.presign("GET", "media-bucket", "k.txt", 900)
    end = datetime.now(UTC)
    match = re.search(r"X-Amz-Date=(\d{8}T\d{6}Z)", url)
    assert match is not None
    signed_at = datetime.strptime(match.group(1), "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    assert start <= signed_at <= end


@pytest.mark.parametrize("expires_in", [0, -1, MAX_EXPIRES_IN + 1, True, 1.5])
def test_expiry_outside_s3_limits_is_refused(expires_in: Any) -> None:
    ours = presigner("eu-west-1", "http://127.0.0.1:9000", "path", None)
    with pytest.raises(ValueError, match="expires_in"):
        ours.presign("GET", "media-bucket", "k", expires_in, now=NOW)


@pytest.mark.parametrize(
    ("method", "bucket", "key", "kwargs", "message"),
    [
        ("POST", "media-bucket", "k", {}, "method"),
        ("GET", "media-bucket", "", {}, "key"),
        ("GET", "Media_Bucket", "k", {}, "bucket"),
        ("GET", "arn:aws:s3:eu-west-1:123456789012:accesspoint/x", "k", {}, "bucket"),
        ("GET", "express--euw1-az1--x-s3", "k", {}, "bucket"),
        ("GET", "media-bucket", "k", {"content_type": "image/png"}, "content_type"),
        ("PUT", "media-bucket", "k", {"content_type": "  "}, "content_type"),
        ("PUT", "media-bucket", "k", {"content_type": "image/pñg"}, "content_type"),
        ("GET", "media-bucket", "k", {"now": datetime(2024, 1, 1)}, "timezone-aware"),
    ],
)
def test_inputs_botocore_would_treat_differently_are_refused(
    method: str, bucket: str, key: str, kwargs: dict[str, Any], message: str
) -> None:
    ours = presigner("eu-west-1", "http://127.0.0.1:9000", "path", None)
    kwargs.setdefault("now", NOW)
    with pytest.raises(ValueError, match=message):
        ours.presign(method, bucket, key, 900, **kwargs)


@pytest.mark.parametrize(
    ("region", "endpoint", "message"),
    [
        ("eu-west-1", "ftp://s3.example.com", "http"),
        ("eu-west-1", "https://s3.example.com?x=1", "query"),
        ("eu-west-1", "https://user:pw@s3.example.com", "credentials"),
        ("eu-west-1", "http://[::1]:9000", "IPv4"),
        ("eu-west-1", "https://s3.example.com/a/../b", "path"),
        ("eu-west-1", "https://s3.example.com:notaport", "port"),
        ("aws-global", "https://s3.example.com", "region"),
        ("eu_west_1", "https://s3.example.com", "region"),
    ],
)
def test_configurations_outside_the_checked_set_are_refused(
    region: str, endpoint: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        SigV4Presigner(ACCESS_KEY, SECRET_KEY, region, endpoint)
