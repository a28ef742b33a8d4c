"""Tokens from an identity provider: RS256 or ES256, verified against its JWKS.

Deployments with an identity provider (Auth0, Okta, Keycloak, Cognito...) set
``CHIMERA_JWKS_URL``; tokens it signs then work beside the HS256 tokens `chimera token`
mints. They carry the same claims (`tid`, `tenant`, `role`, `sub`, `exp`; `jti` to be
revocable), added by the provider's claim mapping, and are checked against
``CHIMERA_JWT_ISSUER`` and ``CHIMERA_JWT_AUDIENCE`` when those are set.

PyJWT's ``PyJWKClient`` fetches the key set, keeps it five minutes, and fetches it again when
a token names a key id it does not know (at most once per 30 s, so that forged key ids cannot
make it hammer the provider): a provider's key rotation is picked up on the first token
signed with the new key. The fetch is blocking (urllib), so it runs in a thread; a
token verified once is remembered until it expires, like an HS256 one.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict

import jwt
from jwt import PyJWKClient, PyJWKClientConnectionError, PyJWKClientError

from app.auth import Principal, Role, principal_of
from app.errors import StoreUnavailable, Unauthenticated

ALGORITHMS = ("RS256", "ES256")
KEY_SET_SECONDS = 300
KEPT = 4096


def signed_by_provider(token: str) -> bool:
    """Whether a token is signed with a provider's (asymmetric) key rather than ours."""
    try:
        return jwt.get_unverified_header(token).get("alg") in ALGORITHMS
    except jwt.InvalidTokenError:
        return False


class ProviderTokens:
    def __init__(
        self, url: str, *, issuer: str | None, audience: str | None, timeout: float
    ) -> None:
        self.client = PyJWKClient(
            url, cache_jwk_set=True, lifespan=KEY_SET_SECONDS, timeout=int(max(1, timeout))
        )
        self.issuer = issuer
        self.audience = audience
        self._verified: OrderedDict[str, tuple[Principal, float]] = OrderedDict()

    async def principal(self, token: str) -> Principal:
        known = self._verified.get(token)
        if known is not None:
            principal, expires = known
            if time.time() < expires:
                return principal
            del self._verified[token]
        principal, expires = await self._verify(token)
        self._verified[token] = (principal, expires)
        if len(self._verified) > KEPT:
            self._verified.popitem(last=False)
        return principal

    async def _verify(self, token: str) -> tuple[Principal, float]:
        try:
            signing_key = await asyncio.to_thread(self.client.get_signing_key_from_jwt, token)
        except PyJWKClientConnectionError as exc:
            raise StoreUnavailable("JWKS", "the identity provider's keys") from exc
        except (PyJWKClientError, jwt.InvalidTokenError) as exc:
            raise Unauthenticated("The bearer token is invalid") from exc
        try:
            claims = jwt.decode(
                token,
                signing_key.key,
                algorithms=list(ALGORITHMS),
                issuer=self.issuer,
                audience=self.audience,
                options={
                    "require": ["exp", "sub", "tid", "tenant", "role"],
                    "verify_aud": self.audience is not None,
                },
            )
            role = Role(str(claims["role"]))
            if role is Role.AGENT:
                raise jwt.InvalidTokenError("agent tokens are minted by chimera token only")
            return principal_of(token, claims, role), float(claims["exp"])
        except jwt.ExpiredSignatureError as exc:
            raise Unauthenticated("The bearer token has expired") from exc
        except (jwt.InvalidTokenError, ValueError) as exc:
            raise Unauthenticated("The bearer token is invalid") from exc
