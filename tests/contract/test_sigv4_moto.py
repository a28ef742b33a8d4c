"""SigV4Presigner's URLs work against a real S3 API over HTTP (moto's server).

The unit tests prove the URLs are botocore's; these prove they are usable as URLs: an HTTP
client that is not botocore can upload and download with them, and the object lands under
exactly the key that was signed, spaces and unicode included.

moto (5.2.x) does not check query-string signatures or X-Amz-Expires at all: it serves any URL
whose query contains "Signature=" (and with IAM auth switched on it answers such URLs with 500,
as its verifier reads only the Authorization header). The rejection tests are therefore strict
xfails: they record the gap, and fail loudly, prompting their promotion, once moto enforces it.
What vouches for the signatures meanwhile is their byte-identity with botocore's.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import httpx
import pytest
from botocore.config import Config

from app.stores.objects.sigv4 import SigV4Presigner
from tests.moto import moto_server

REGION = "us-east-1"
BUCKET = "chimera-media"


MOTO_IGNORES_SIGNATURES = pytest.mark.xfail(
    strict=True,
    reason="moto 5.2 serves presigned URLs without checking signature or expiry",
)


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with moto_server() as url:
        yield url


@pytest.fixture(scope="module")
def s3(endpoint: str) -> Any:
    client = boto3.client(
        "s3",
        region_name=REGION,
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(s3={"addressing_style": "path"}),
    )
    client.create_bucket(Bucket=BUCKET)
    return client


@pytest.fixture(scope="module")
def presigner(endpoint: str, s3: Any) -> SigV4Presigner:
    return SigV4Presigner("testing", "testing", REGION, endpoint)


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as client:
        yield client


def _key(name: str) -> str:
    return f"tenants/{uuid.uuid4()}/media/{uuid.uuid4()}/{name}"


@pytest.mark.parametrize(
    "name", ["photo.jpg", "photo 1 (final).jpg", "café façade ☕.png", "a+b=c&d;e,f!i*j'k~n"]
)
def test_put_then_get_round_trips(
    presigner: SigV4Presigner, http: httpx.Client, s3: Any, name: str
) -> None:
    key = _key(name)
    body = f"bytes of {name}".encode() + bytes(range(256))

    put_url = presigner.presign("PUT", BUCKET, key, 900, content_type="image/png")
    put = http.put(put_url, content=body, headers={"Content-Type": "image/png"})
    assert put.status_code == 200, put.text

    got = http.get(presigner.presign("GET", BUCKET, key, 900))
    assert got.status_code == 200, got.text
    assert got.content == body
    assert got.headers["content-type"] == "image/png"
    stored = s3.get_object(Bucket=BUCKET, Key=key)
    assert stored["Body"].read() == body
    assert stored["ContentType"] == "image/png"


def test_head_and_delete(presigner: SigV4Presigner, http: httpx.Client) -> None:
    key = _key("to delete.txt")
    put = http.put(presigner.presign("PUT", BUCKET, key, 60), content=b"x")
    assert put.status_code == 200, put.text

    assert http.head(presigner.presign("HEAD", BUCKET, key, 60)).status_code == 200
    assert http.delete(presigner.presign("DELETE", BUCKET, key, 60)).status_code == 204
    assert http.head(presigner.presign("HEAD", BUCKET, key, 60)).status_code == 404


@MOTO_IGNORES_SIGNATURES
def test_expired_url_is_rejected(presigner: SigV4Presigner, http: httpx.Client) -> None:
    key = _key("expired.txt")
    assert http.put(presigner.presign("PUT", BUCKET, key, 60), content=b"x").status_code == 200

    signed_an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
    url = presigner.presign("GET", BUCKET, key, 1, now=signed_an_hour_ago)
    assert http.get(url).status_code == 403


@MOTO_IGNORES_SIGNATURES
def test_tampered_signature_is_rejected(presigner: SigV4Presigner, http: httpx.Client) -> None:
    key = _key("tampered.txt")
    assert http.put(presigner.presign("PUT", BUCKET, key, 60), content=b"x").status_code == 200

    url = presigner.presign("GET", BUCKET, key, 60)
    tampered = url[:-1] + ("0" if url[-1] != "0" else "1")
    assert http.get(tampered).status_code == 403
