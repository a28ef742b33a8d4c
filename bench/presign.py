"""How many presigned GET URLs per second SigV4Presigner signs, next to botocore, in one run.

Run: ``.venv/bin/python bench/presign.py`` (``--help`` for the counts).

Both signers run in the same process one after the other, so the ratio holds on a shared,
noisy machine where the absolute rates do not. Before timing anything it checks that a sample
of URLs, signed at one frozen time, is byte-identical between the two: a fast signer that
signs differently would be no result at all. Exits 1 if any differ.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest import mock

# Run as a script, Python puts bench/ first on sys.path; the checkout's own app package must
# win over any installed copy, or this would time some other tree's code.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import botocore.session
from botocore.config import Config

from app.stores.objects.sigv4 import SigV4Presigner

ACCESS_KEY = "AKIAIOSFODNN7EXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
REGION = "eu-west-1"
ENDPOINT = "http://127.0.0.1:9000"
BUCKET = "chimera-media"
EXPIRES_IN = 900
FROZEN = datetime(2024, 2, 29, 13, 14, 15, tzinfo=UTC)


def make_keys(count: int) -> list[str]:
    """Distinct keys shaped like the project's media keys, so no per-key caching can help."""
    return [f"tenants/{uuid.uuid4()}/media/{uuid.uuid4()}/photo 1.jpg" for _ in range(count)]


def botocore_client() -> Any:
    return botocore.session.Session().create_client(
        "s3",
        region_name=REGION,
        endpoint_url=ENDPOINT,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )


def rate(sign: Callable[[str], str], keys: list[str]) -> float:
    """URLs per second over ``keys``, after a short warm-up outside the timed loop."""
    for key in keys[:50]:
        sign(key)
    start = time.perf_counter()
    for key in keys:
        sign(key)
    return len(keys) / (time.perf_counter() - start)


def check_identical(ours: SigV4Presigner, client: Any, keys: list[str]) -> int:
    """How many of ``keys`` get different URLs from the two signers at the frozen time."""
    frozen = FROZEN.replace(tzinfo=None)
    differ = 0
    with mock.patch("botocore.auth.get_current_datetime", return_value=frozen):
        for key in keys:
            theirs = client.generate_presigned_url(
                "get_object", Params={"Bucket": BUCKET, "Key": key}, ExpiresIn=EXPIRES_IN
            )
            if ours.presign("GET", BUCKET, key, EXPIRES_IN, now=FROZEN) != theirs:
                differ += 1
    return differ


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--ours", type=int, default=20_000, help="URLs for SigV4Presigner")
    parser.add_argument("--botocore", type=int, default=2_000, help="URLs for botocore")
    parser.add_argument("--sample", type=int, default=500, help="URLs compared for identity")
    args = parser.parse_args()

    ours = SigV4Presigner(ACCESS_KEY, SECRET_KEY, REGION, ENDPOINT)
    client = botocore_client()

    differ = check_identical(ours, client, make_keys(args.sample))
    print(f"identical URLs at a frozen time: {args.sample - differ}/{args.sample}")
    if differ:
        return 1

    # Timed at the real clock, the way the application calls each signer.
    ours_rate = rate(lambda key: ours.presign("GET", BUCKET, key, EXPIRES_IN), make_keys(args.ours))
    botocore_rate = rate(
        lambda key: str(
            client.generate_presigned_url(
                "get_object", Params={"Bucket": BUCKET, "Key": key}, ExpiresIn=EXPIRES_IN
            )
        ),
        make_keys(args.botocore),
    )
    print(f"SigV4Presigner: {ours_rate:>10,.0f} URLs/s ({args.ours:,} URLs)")
    print(f"botocore:       {botocore_rate:>10,.0f} URLs/s ({args.botocore:,} URLs)")
    print(f"ratio:          {ours_rate / botocore_rate:>10.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
