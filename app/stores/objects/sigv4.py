"""SigV4 query-string presigning for S3, done in memory and without botocore per URL.

A dashboard page can need hundreds of presigned URLs for one request. botocore builds a request
object, runs its event hooks and evaluates the S3 endpoint rules for every URL it signs, yet all
of that is the same for every key in a bucket on a given day. This presigner works it out once
(per bucket and per UTC date) and per URL only quotes the key, hashes the canonical request and
computes one HMAC.

Its URLs are byte-identical to those of botocore's S3 client (``signature_version="s3v4"``) for
the same endpoint URL, region, addressing style, credentials and time, so anything that accepts
botocore's URLs accepts these; ``tests/unit/test_sigv4.py`` holds it to that. To keep that
promise checkable it accepts a deliberately narrow set of inputs (ordinary bucket names, an
http(s) endpoint without query or credentials) and raises ``ValueError`` for the rest rather
than guess how botocore would treat them.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from datetime import UTC, datetime
from typing import Final, Literal
from urllib.parse import quote, urlsplit

MAX_EXPIRES_IN: Final = 604_800
"""S3 refuses SigV4 presigned URLs that are valid for longer than seven days."""

_ALGORITHM: Final = "AWS4-HMAC-SHA256"
_QUERY_SAFE: Final = "-_.~"
_KEY_SAFE: Final = "/~"
_METHODS: Final = frozenset({"GET", "HEAD", "PUT", "DELETE"})
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}
_BUCKET_CACHE_LIMIT: Final = 1024

# S3's rules for new bucket names. botocore accepts more (uppercase and underscores, for old
# us-east-1 buckets, and ARNs); those take other paths through its endpoint rules, so refusing
# them is what lets this module promise identical URLs.
_BUCKET_RE: Final = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
# Suffixes that send botocore's endpoint rules to S3 Express, access points and Outposts.
_SPECIAL_BUCKET_SUFFIXES: Final = ("--x-s3", "--xa-s3", "--op-s3")
# The same patterns botocore's endpoint rules use to decide on virtual hosting.
_IPV4_RE: Final = re.compile(r"(?:[0-9]{1,3}\.){3}[0-9]{1,3}")
_HOST_LABEL_RE: Final = re.compile(r"(?!-)[a-zA-Z\d-]{1,63}(?<!-)")
# Endpoint paths whose normalized and raw forms agree, so both of botocore's templates (raw path
# for virtual hosting, normalized path for path style) can be reproduced without its normalizer.
_ENDPOINT_PATH_RE: Final = re.compile(r"(?:/[A-Za-z0-9_~-][A-Za-z0-9._~-]*)*/?")
# Header values that botocore and S3 canonicalize the same way (ASCII whitespace only).
_CONTENT_TYPE_RE: Final = re.compile(r"[\x20-\x7e]*[\x21-\x7e][\x20-\x7e]*")


def _virtual_hostable(bucket: str, *, allow_dots: bool) -> bool:
    """botocore's ``aws.isVirtualHostableS3Bucket``: which buckets may become host names."""
    if len(bucket) < 3 or bucket.lower() != bucket or _IPV4_RE.fullmatch(bucket):
        return False
    if "." in bucket and not allow_dots:
        return False
    return all(_HOST_LABEL_RE.fullmatch(label) for label in bucket.split("."))


class SigV4Presigner:
    """Presigns S3 object URLs with one set of credentials against one endpoint.

    Meant to live as long as the credentials do and to be shared: what it caches (signing keys,
    per-bucket URL prefixes) only makes later URLs cheaper.
    """

    __slots__ = (
        "_access_key",
        "_bucket_cache",
        "_day",
        "_host",
        "_ip_endpoint",
        "_netloc",
        "_path",
        "_path_style",
        "_region",
        "_scheme",
        "_secret",
        "_service",
        "_token_query",
    )

    def __init__(
        self,
        access_key: str,
        secret_key: str,
        region: str,
        endpoint_url: str,
        *,
        addressing_style: Literal["path", "virtual"] = "path",
        session_token: str | None = None,
        service: str = "s3",
    ) -> None:
        if not access_key or "/" in access_key:
            raise ValueError("access_key must be non-empty and contain no '/'")
        if not secret_key:
            raise ValueError("secret_key must be non-empty")
        # A region goes into host names and the credential scope; "aws-global" would make
        # botocore sign for us-east-1 instead.
        if not _HOST_LABEL_RE.fullmatch(region) or region == "aws-global":
            raise ValueError(f"region {region!r} is not a valid region name")
        if not _HOST_LABEL_RE.fullmatch(service):
            raise ValueError(f"service {service!r} is not a valid signing name")
        if addressing_style not in ("path", "virtual"):
            raise ValueError("addressing_style must be 'path' or 'virtual'")
        if session_token == "":
            raise ValueError("session_token must be None or non-empty")

        parts = urlsplit(endpoint_url)
        if parts.scheme not in _DEFAULT_PORTS:
            raise ValueError("endpoint_url must start with http:// or https://")
        if parts.query or parts.fragment or parts.username is not None or "@" in parts.netloc:
            raise ValueError("endpoint_url must not carry a query, fragment or credentials")
        hostname = parts.hostname
        if not hostname or ":" in hostname or "[" in parts.netloc:
            raise ValueError("endpoint_url host must be a DNS name or an IPv4 address")
        port = parts.port  # raises ValueError on a malformed port
        if not _ENDPOINT_PATH_RE.fullmatch(parts.path):
            raise ValueError("endpoint_url path may only hold plain segments like /s3")

        self._access_key = access_key
        self._secret = secret_key.encode()
        self._region = region
        self._service = service
        self._path_style = addressing_style == "path"
        self._scheme = parts.scheme
        self._netloc = parts.netloc
        self._path = parts.path.rstrip("/")
        self._ip_endpoint = _IPV4_RE.fullmatch(hostname) is not None
        # The signed host, derived as botocore derives it: lowercase and without a default port,
        # which HTTP clients leave out of the Host header even when the URL spells it out.
        self._host = (
            hostname if port in (None, _DEFAULT_PORTS[parts.scheme]) else f"{hostname}:{port}"
        )
        self._token_query = (
            ""
            if session_token is None
            else "&X-Amz-Security-Token=" + quote(session_token, _QUERY_SAFE)
        )
        self._bucket_cache: dict[str, tuple[str, str, str]] = {}
        self._day: tuple[str, bytes, str, str] = ("", b"", "", "")

    def presign(
        self,
        method: str,
        bucket: str,
        key: str,
        expires_in: int,
        *,
        now: datetime | None = None,
        content_type: str | None = None,
    ) -> str:
        """A URL that lets its holder perform ``method`` on the object for ``expires_in`` seconds.

        ``now`` (timezone-aware; default: the current time) is the signing time the URL is valid
        from; naive datetimes are refused because a local time taken for UTC would silently move
        the validity window.

        Headers: GET, HEAD and DELETE URLs sign only ``host``, so the client sends nothing
        special. A PUT URL made with ``content_type`` signs it as a header, exactly as botocore
        does for ``put_object`` with ``ContentType`` (``X-Amz-SignedHeaders=content-type;host``);
        the uploader must then send ``Content-Type`` with that same value (S3 compares it after
        trimming surrounding and repeated spaces) or S3 answers 403 SignatureDoesNotMatch. That
        pins the type the object is stored with. Without ``content_type`` no header is signed and
        the uploader's Content-Type, if any, is stored as sent.
        """
        method = method.upper()
        if method not in _METHODS:
            raise ValueError(f"method must be one of {sorted(_METHODS)}, not {method!r}")
        if type(expires_in) is not int or not 1 <= expires_in <= MAX_EXPIRES_IN:
            raise ValueError(f"expires_in must be an int from 1 to {MAX_EXPIRES_IN} seconds")
        if not key:
            raise ValueError("key must be non-empty")
        if content_type is not None:
            if method != "PUT":
                raise ValueError("content_type is only signed for PUT")
            if not _CONTENT_TYPE_RE.fullmatch(content_type):
                raise ValueError("content_type must be non-blank printable ASCII")

        if now is None:
            now = datetime.now(UTC)
        elif now.utcoffset() is None:
            raise ValueError("now must be timezone-aware")
        else:
            now = now.astimezone(UTC)
        amz_date = (
            f"{now.year:04d}{now.month:02d}{now.day:02d}"
            f"T{now.hour:02d}{now.minute:02d}{now.second:02d}Z"
        )
        datestamp, signing_key, credential, scope = self._day
        if datestamp != amz_date[:8]:
            datestamp, signing_key, credential, scope = self._day = self._derive(amz_date[:8])

        cached = self._bucket_cache.get(bucket)
        if cached is None:
            cached = self._bucket_base(bucket)
        url_base, path_base, host = cached
        path = path_base + quote(key, _KEY_SAFE)

        # The canonical query sorts its parameters (Security-Token before SignedHeaders); the
        # URL keeps botocore's insertion order, with the token last.
        front = (
            f"X-Amz-Algorithm={_ALGORITHM}&X-Amz-Credential={credential}"
            f"&X-Amz-Date={amz_date}&X-Amz-Expires={expires_in}"
        )
        if content_type is None:
            signed = "host"
            headers = f"host:{host}\n"
        else:
            signed = "content-type%3Bhost"
            headers = f"content-type:{' '.join(content_type.split())}\nhost:{host}\n"
        token = self._token_query
        canonical = (
            f"{method}\n{path}\n{front}{token}&X-Amz-SignedHeaders={signed}\n"
            f"{headers}\n{'host' if content_type is None else 'content-type;host'}\n"
            "UNSIGNED-PAYLOAD"
        )
        to_sign = (
            f"{_ALGORITHM}\n{amz_date}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
        )
        signature = hmac.digest(signing_key, to_sign.encode(), "sha256").hex()
        return (
            f"{url_base}{path}?{front}&X-Amz-SignedHeaders={signed}{token}"
            f"&X-Amz-Signature={signature}"
        )

    def _derive(self, datestamp: str) -> tuple[str, bytes, str, str]:
        """The day's signing key and credential strings: four HMACs, once per UTC date."""
        k_date = hmac.digest(b"AWS4" + self._secret, datestamp.encode(), "sha256")
        k_region = hmac.digest(k_date, self._region.encode(), "sha256")
        k_service = hmac.digest(k_region, self._service.encode(), "sha256")
        k_signing = hmac.digest(k_service, b"aws4_request", "sha256")
        scope = f"{datestamp}/{self._region}/{self._service}/aws4_request"
        credential = quote(f"{self._access_key}/{scope}", _QUERY_SAFE)
        return datestamp, k_signing, credential, scope

    def _bucket_base(self, bucket: str) -> tuple[str, str, str]:
        """Where botocore's S3 endpoint rules put ``bucket``: URL prefix, path prefix, Host.

        For a custom endpoint the rules choose virtual hosting only when asked to, and then for a
        bucket that is a single lowercase DNS label unless the endpoint is an IP address; over
        http a dotted name qualifies too, even on an IP endpoint. Everything else is path style.
        """
        if not _BUCKET_RE.fullmatch(bucket) or bucket.endswith(_SPECIAL_BUCKET_SUFFIXES):
            raise ValueError(f"bucket {bucket!r} is not a plain S3 bucket name")
        if self._path_style:
            virtual = False
        elif _virtual_hostable(bucket, allow_dots=False):
            virtual = not self._ip_endpoint
        else:
            virtual = self._scheme == "http" and _virtual_hostable(bucket, allow_dots=True)
        if virtual:
            base = (
                f"{self._scheme}://{bucket}.{self._netloc}",
                f"{self._path}/",
                f"{bucket}.{self._host}",
            )
        else:
            base = (f"{self._scheme}://{self._netloc}", f"{self._path}/{bucket}/", self._host)
        if len(self._bucket_cache) >= _BUCKET_CACHE_LIMIT:
            self._bucket_cache.clear()
        self._bucket_cache[bucket] = base
        return base
