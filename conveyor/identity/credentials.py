"""Secrets in and out: API tokens and scrypt password hashes, compared in constant time.

A token reads ``cvy_<id>_<secret>``: the id finds its row in one indexed lookup, and only
the SHA-256 of the secret is stored. The secret is 32 random bytes, so a fast hash is
enough (nobody can guess 256 bits); passwords are chosen by people and guessable, so they
get scrypt, a slow and memory-hard hash, with a random salt per password.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid

from conveyor.store.sql.identity import PasswordHash

TOKEN_PREFIX = "cvy"
#: scrypt cost (N), block size (r) and parallelism (p): about 16 MiB and 50 ms per check.
SCRYPT_COST = 2**14
SCRYPT_BLOCK_SIZE = 8
SCRYPT_PARALLELISM = 1
_SCRYPT_KEY_BYTES = 32
_SALT_BYTES = 16


def new_token() -> tuple[str, str, str]:
    """A fresh token: ``(token_id, full token to hand out, digest to store)``."""
    token_id = uuid.uuid4().hex
    secret = secrets.token_urlsafe(32)
    return token_id, f"{TOKEN_PREFIX}_{token_id}_{secret}", token_digest(secret)


def token_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_token(token: str) -> tuple[str, str] | None:
    """``(token_id, secret)`` of a well-formed token, else None."""
    prefix, _, rest = token.strip().partition("_")
    token_id, _, secret = rest.partition("_")
    if prefix != TOKEN_PREFIX or len(token_id) != 32 or not secret:
        return None
    return token_id, secret


def looks_like_token(value: str) -> bool:
    return value.startswith(f"{TOKEN_PREFIX}_")


def secret_matches(secret: str, stored_digest: str) -> bool:
    """Constant-time comparison, so response times leak nothing about the stored digest."""
    return hmac.compare_digest(token_digest(secret), stored_digest)


def hash_password(password: str) -> PasswordHash:
    salt = secrets.token_bytes(_SALT_BYTES)
    digest = _scrypt(password, salt, SCRYPT_COST, SCRYPT_BLOCK_SIZE, SCRYPT_PARALLELISM)
    return PasswordHash(
        algorithm="scrypt",
        cost=SCRYPT_COST,
        block_size=SCRYPT_BLOCK_SIZE,
        parallelism=SCRYPT_PARALLELISM,
        salt=salt.hex(),
        digest=digest.hex(),
    )


def password_matches(password: str, stored: PasswordHash) -> bool:
    """Recompute with the stored salt and parameters; compare in constant time."""
    salt = bytes.fromhex(stored.salt)
    digest = _scrypt(password, salt, stored.cost, stored.block_size, stored.parallelism)
    return hmac.compare_digest(digest.hex(), stored.digest)


#: Checked against when the user does not exist, so that an unknown name costs the same
#: scrypt run as a wrong password and timing does not reveal which names exist.
DUMMY_HASH = PasswordHash("scrypt", SCRYPT_COST, SCRYPT_BLOCK_SIZE, SCRYPT_PARALLELISM, "00" * 16, "00" * 32)


def _scrypt(password: str, salt: bytes, cost: int, block_size: int, parallelism: int) -> bytes:
    return hashlib.scrypt(
        password.encode(),
        salt=salt,
        n=cost,
        r=block_size,
        p=parallelism,
        maxmem=256 * 1024 * 1024,
        dklen=_SCRYPT_KEY_BYTES,
    )
