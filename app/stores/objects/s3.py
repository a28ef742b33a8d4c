"""S3-compatible object storage (AWS S3, MinIO, GCS interop) through aioboto3.

aioboto3 does the few calls that need the network (HEAD, the copy that promotes a checked
upload, DELETE, the sweeper's LIST, the bucket check); URLs are presigned in memory by our
SigV4 signer, which produces botocore's exact URLs at a fraction of the cost
(docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import aioboto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from app.errors import StoreUnavailable
from app.settings import Settings
from app.stores.objects.headers import content_disposition
from app.stores.objects.port import ObjectInfo, PresignedUpload
from app.stores.objects.sigv4 import SigV4Presigner

T = TypeVar("T")

AWS_ENDPOINT = "https://s3.{region}.amazonaws.com"

# What S3 and compatible stores answer for a missing key, or a copy source that no longer
# matches x-amz-copy-source-if-match.
_MISSING = frozenset({"404", "NoSuchKey", "NotFound"})
_CHANGED = frozenset({"412", "PreconditionFailed"})


class S3ObjectStore:
    name = "s3"

    def __init__(
        self, client: Any, bucket: str, presigner: SigV4Presigner, *, timeout: float, endpoint: str
    ) -> None:
        self.client = client
        self.bucket = bucket
        self.presigner = presigner
        self.timeout = timeout
        self.endpoint = endpoint
        self.list_page_size = 1000  # S3's own maximum; tests make it small to see paging

    def presign_get(self, key: str, expires_in: int) -> str:
        return self.presigner.presign("GET", self.bucket, key, expires_in)

    def presign_put(self, key: str, content_type: str, expires_in: int) -> PresignedUpload:
        url = self.presigner.presign("PUT", self.bucket, key, expires_in, content_type=content_type)
        return PresignedUpload(
            url=url,
            method="PUT",
            headers={"Content-Type": content_type},
            expires_at=datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=expires_in),
        )

    async def _call(self, call: Awaitable[T]) -> T:
        try:
            async with asyncio.timeout(self.timeout):
                return await call
        except ClientError:
            raise
        except (BotoCoreError, OSError, TimeoutError) as exc:
            raise StoreUnavailable("S3", f"{self.endpoint}: {type(exc).__name__}") from exc

    async def head(self, key: str) -> ObjectInfo | None:
        try:
            reply = await self._call(self.client.head_object(Bucket=self.bucket, Key=key))
        except ClientError as exc:
            if _code(exc) in _MISSING:
                return None
            raise StoreUnavailable("S3", _client_error(exc)) from exc
        return ObjectInfo(
            size=int(reply["ContentLength"]),
            content_type=reply.get("ContentType"),
            etag=str(reply.get("ETag", "")).strip('"') or None,
        )

    async def promote(
        self, source: str, target: str, *, etag: str | None, content_type: str
    ) -> bool:
        """A server-side copy, conditional on the source still being the checked version.

        The copy replaces the metadata: the target is stored with exactly the declared type
        and a Content-Disposition (inline for plain images and videos, attachment otherwise),
        which S3 then sends with every GET of it.
        """
        condition = {"CopySourceIfMatch": f'"{etag}"'} if etag else {}
        filename = target.rsplit("/", 1)[-1]
        try:
            await self._call(
                self.client.copy_object(
                    Bucket=self.bucket,
                    Key=target,
                    CopySource={"Bucket": self.bucket, "Key": source},
                    MetadataDirective="REPLACE",
                    ContentType=content_type,
                    ContentDisposition=content_disposition(content_type, filename),
                    **condition,
                )
            )
        except ClientError as exc:
            if _code(exc) in _MISSING | _CHANGED:
                return False
            raise StoreUnavailable("S3", _client_error(exc)) from exc
        return True

    async def delete(self, key: str) -> None:
        try:
            await self._call(self.client.delete_object(Bucket=self.bucket, Key=key))
        except ClientError as exc:
            raise StoreUnavailable("S3", _client_error(exc)) from exc

    async def list_keys(self, prefix: str) -> AsyncIterator[str]:
        token: dict[str, str] = {}
        while True:
            try:
                page = await self._call(
                    self.client.list_objects_v2(
                        Bucket=self.bucket, Prefix=prefix, MaxKeys=self.list_page_size, **token
                    )
                )
            except ClientError as exc:
                raise StoreUnavailable("S3", _client_error(exc)) from exc
            for item in page.get("Contents", []):
                yield str(item["Key"])
            if not page.get("IsTruncated"):
                return
            token = {"ContinuationToken": str(page["NextContinuationToken"])}

    async def ping(self) -> str:
        try:
            await self._call(self.client.head_bucket(Bucket=self.bucket))
        except ClientError as exc:
            raise StoreUnavailable("S3", f"bucket {self.bucket!r}: {_client_error(exc)}") from exc
        return f"S3 bucket {self.bucket} at {self.endpoint}"

    async def close(self) -> None:
        return None


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _client_error(exc: ClientError) -> str:
    error = exc.response.get("Error", {})
    return f"{error.get('Code', 'error')}: {error.get('Message', '')}".strip()


@asynccontextmanager
async def open_s3_store(settings: Settings) -> AsyncIterator[S3ObjectStore]:
    if not settings.s3_access_key_id or settings.s3_secret_access_key is None:
        raise StoreUnavailable(
            "S3", "S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY are needed to presign URLs"
        )
    endpoint = settings.s3_endpoint or AWS_ENDPOINT.format(region=settings.s3_region)
    secret = settings.s3_secret_access_key.get_secret_value()
    token = settings.s3_session_token.get_secret_value() if settings.s3_session_token else None
    presigner = SigV4Presigner(
        settings.s3_access_key_id,
        secret,
        settings.s3_region,
        settings.s3_public_endpoint or endpoint,
        addressing_style=settings.s3_addressing_style,
        session_token=token,
    )
    timeout = settings.store_timeout_seconds
    config = Config(
        s3={"addressing_style": settings.s3_addressing_style},
        connect_timeout=timeout,
        read_timeout=timeout,
        retries={"max_attempts": 2, "mode": "standard"},
    )
    session = aioboto3.Session()
    async with session.client(
        "s3",
        endpoint_url=endpoint,
        region_name=settings.s3_region,
        aws_access_key_id=settings.s3_access_key_id,
        aws_secret_access_key=secret,
        aws_session_token=token,
        config=config,
    ) as client:
        yield S3ObjectStore(
            client, settings.s3_bucket, presigner, timeout=timeout, endpoint=endpoint
        )
