"""Credentials bound to one worker: what a process that holds a token sends to workers instead of the token.

A bearer token is a key to everything its principal may do, so it is only ever sent to the registry and the
orchestrator daemon, which a deployment trusts. Workers are different: any principal with the `worker`
role may register one at an address of its choosing, and then hear every call the daemon makes to it. So a
call to a worker carries a *signed credential* instead:

    authorization: WA-Signed <payload>.<signature>

- The payload names the signing key (`key_id`), the **audience** (the worker's address exactly as it
  registered it, which is what the caller dials) and a lifetime of at most `LIFETIME_SECONDS`.
- The signature is Ed25519, by a key derived from the token; the public half (`public_key(token)`) is all
  a worker needs to check it. A token file entry gives it as `public_key`, or it is derived from a plain
  `token` entry; the key's id names the principal. No holder of a public key, or of a token file of
  digests and public keys, can make a credential.
- A worker accepts a credential only for its own address (`Authenticator.accept_audience`); every other
  server (registry, daemon) refuses signed credentials outright. A credential captured by a worker is
  therefore good for nothing but calls to that same worker, for minutes.

Signing takes ~50 µs and happens once per worker per half lifetime (the credential is reused until then);
a worker checks each distinct credential once and remembers it until it expires.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable
from typing import Any

SCHEME = "WA-Signed"
LIFETIME_SECONDS = 600.0  # how long a credential is good for (it is re-made after half of it)
MAX_LIFETIME_SECONDS = 3600.0  # what a verifier accepts at most, whatever the payload claims
CLOCK_SKEW_SECONDS = 60.0  # how far the signer's clock may run ahead of the verifier's
_DERIVATION = b"worker-abstraction signing key v1"
_MAX_CREDENTIAL_CHARS = 4096
_MAX_REMEMBERED = 4096


def _seed(token: str) -> bytes:
    return hmac.new(_DERIVATION, token.encode(), hashlib.sha256).digest()


def public_key(token: str) -> bytes:
    """The 32-byte Ed25519 public key a worker checks `token`'s signed credentials with."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    key = Ed25519PrivateKey.from_private_bytes(_seed(token))
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def key_id(public: bytes) -> str:
    """The short name of a public key that a credential carries (the key itself is looked up by it)."""
    return hashlib.sha256(public).hexdigest()[:24]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Signer:
    """Makes the signed credentials of one token's principal for any audience.

    Args:
        token: the bearer token, from which the signing key is derived (the token itself is never sent).
        clock: wall-clock seconds (injectable for tests).
    """

    def __init__(self, token: str, *, clock: Callable[[], float] = time.time) -> None:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        self._key = Ed25519PrivateKey.from_private_bytes(_seed(token))
        self.key_id = key_id(public_key(token))
        self._clock = clock
        self._made: dict[str, tuple[str, float]] = {}  # audience -> (credential, when to make a new one)
        self._lock = threading.Lock()  # (channels of a sync facade sign from another thread)

    def credential(self, audience: str) -> str:
        """The `authorization` value for a call to `audience` (a worker's registered address)."""
        now = self._clock()
        with self._lock:
            made = self._made.get(audience)
            if made is not None and now < made[1]:
                return made[0]
            if len(self._made) >= _MAX_REMEMBERED:
                self._made.clear()
            payload = _b64(
                json.dumps(
                    {"kid": self.key_id, "aud": audience, "iat": int(now), "exp": int(now + LIFETIME_SECONDS)},
                    separators=(",", ":"),
                ).encode()
            )
            value = f"{SCHEME} {payload}.{_b64(self._key.sign(payload.encode()))}"
            self._made[audience] = (value, now + LIFETIME_SECONDS / 2)
            return value


class Verifier:
    """Checks signed credentials against known public keys, for the audiences this server answers to.

    Args:
        key_of: the public key (32 raw bytes) of a key id (None: unknown).
        clock: wall-clock seconds (injectable for tests).
    """

    def __init__(self, key_of: Callable[[str], bytes | None], *, clock: Callable[[], float] = time.time) -> None:
        self._key_of = key_of
        self._clock = clock
        self.audiences: set[str] = set()
        self._checked: dict[str, tuple[str, float]] = {}  # credential -> (principal name, expiry)

    def key_id(self, credential: str) -> str:
        """The id of the key that signed `credential` for one of this server's audiences.

        Raises:
            ValueError: why it is refused, in words for the caller (no credential bytes quoted).
        """
        now = self._clock()
        known = self._checked.get(credential)
        if known is not None and now < known[1]:
            return known[0]
        if not self.audiences:
            raise ValueError("this server takes no signed credentials: send a bearer token (--token / WA_TOKEN)")
        name, expiry = self._check(credential, now)
        if len(self._checked) >= _MAX_REMEMBERED:
            self._checked.clear()
        self._checked[credential] = (name, expiry)
        return name

    def _check(self, credential: str, now: float) -> tuple[str, float]:
        if len(credential) > _MAX_CREDENTIAL_CHARS:
            raise ValueError("the signed credential is too long")
        payload_text, dot, signature_text = credential.partition(".")
        try:
            payload: Any = json.loads(_unb64(payload_text)) if dot else None
            signature = _unb64(signature_text)
        except (ValueError, binascii.Error, UnicodeDecodeError, RecursionError):
            payload = None
        if not isinstance(payload, dict) or not all(
            isinstance(payload.get(k), t) for k, t in (("kid", str), ("aud", str), ("iat", int), ("exp", int))
        ):
            raise ValueError("the signed credential is malformed")
        if payload["aud"] not in self.audiences:
            raise ValueError("the signed credential is for another server")
        issued, expiry = payload["iat"], payload["exp"]
        if issued > now + CLOCK_SKEW_SECONDS or expiry - issued > MAX_LIFETIME_SECONDS:
            raise ValueError("the signed credential's times are not acceptable (check both clocks)")
        if expiry <= now:
            raise ValueError("the signed credential has expired (check both clocks)")
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        key = self._key_of(payload["kid"])
        if key is None:
            raise ValueError(
                "the signed credential's key is not in this server's token file: give the caller's entry its "
                "public_key (`wa token new` prints one with each token) or its token"
            )
        try:
            Ed25519PublicKey.from_public_bytes(key).verify(signature, payload_text.encode())
        except (InvalidSignature, ValueError):
            raise ValueError("the signed credential's signature is not valid") from None
        return payload["kid"], float(expiry)
