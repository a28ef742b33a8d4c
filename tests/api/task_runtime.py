"""A stand-in agent runtime, run as its own process: it claims one task, says which, and then
works on it forever without a heartbeat, until it is killed.

    python -m tests.api.task_runtime URL TOKEN LEASE_SECONDS
"""

from __future__ import annotations

import sys
import time

import httpx

CLAIM = """mutation($lease: Int!) { claimTasks(input: {max: 1, leaseSeconds: $lease}) {
  leases { leaseToken task { id attempts } } } }"""


def main(url: str, token: str, lease_seconds: int) -> None:
    with httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=30) as client:
        while True:
            body = client.post(url, json={"query": CLAIM, "variables": {"lease": lease_seconds}})
            leases = body.json()["data"]["claimTasks"]["leases"]
            if leases:
                print(leases[0]["task"]["id"], leases[0]["leaseToken"], flush=True)
                break
            time.sleep(0.1)
    while True:  # "working"
        time.sleep(3600)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
