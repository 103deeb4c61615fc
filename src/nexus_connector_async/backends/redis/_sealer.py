"""Sealed idempotency results (`result_key=`): AES-GCM, the record's name as associated data."""

from __future__ import annotations

import os

from ..._errors import InvalidRequest, StoredRecordInvalid
from ..._extras import require_extra

__all__ = ["ResultSealer"]


class ResultSealer:
    """AES-GCM for stored results (`result_key=`), the record's name as associated data.

    A record copied to another key, altered, or planted without the key fails to open and
    raises `StoredRecordInvalid`: it is never replayed (api.md 29).
    """

    _VERSION = b"\x01"

    def __init__(self, key: bytes) -> None:
        if not isinstance(key, bytes) or len(key) not in (16, 24, 32):
            raise InvalidRequest("result_key must be 16, 24 or 32 random bytes (AES-GCM)")
        require_extra("RedisBackend(result_key=...)", "crypto", "cryptography")
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: PLC0415

        self._aead = AESGCM(key)

    def seal(self, name: bytes, data: bytes) -> bytes:
        nonce = os.urandom(12)
        return self._VERSION + nonce + self._aead.encrypt(nonce, data, name)

    def open(self, name: bytes, sealed: bytes) -> bytes:
        from cryptography.exceptions import InvalidTag  # noqa: PLC0415

        if len(sealed) < 29 or sealed[:1] != self._VERSION:
            raise StoredRecordInvalid("the stored result is not sealed with result_key: refused")
        try:
            return self._aead.decrypt(sealed[1:13], sealed[13:], name)
        except InvalidTag:
            raise StoredRecordInvalid(
                "the stored result failed authentication (altered, moved or forged): refused"
            ) from None
