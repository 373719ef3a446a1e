"""API keys: several at once, stored hashed, re-read when their file changes.

The key file (``BERTH_API_KEYS_FILE``, by default ``/etc/berth/api-keys``, mode 0640 root:berth)
holds one key per line::

    # NAME      SHA256 OF THE KEY                                                  [SCOPES]
    ci-client   9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08   predict
    dashboard   2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae   model,predict

Keys are high-entropy random strings (``python -m app.keys new NAME``), so a plain sha256 is
enough: the file never holds a key itself. SCOPES is a comma-separated subset of ``SCOPES``;
absent means all. The file is re-read whenever its modification time, size or inode changes, so
keys are added, rotated (old and new listed together for a while) and revoked without a restart.

No file, or a file without keys: the API is open (a warning is logged). A file that exists but
cannot be read keeps the keys read before; if there were none, every request is refused (fail
closed: a permissions mistake must not open the API).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("berth.auth")

SCOPES = ("predict", "model")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class KeyEntry:
    name: str
    scopes: frozenset[str]


class AuthError(Exception):
    """The request may not go on: ``status`` is 401 (no or unknown key) or 403 (wrong scope)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def parse_key_file(text: str, source: str = "api-keys") -> dict[str, KeyEntry]:
    """Entries by key hash. Bad lines are logged (by number, never their content) and skipped."""
    entries: dict[str, KeyEntry] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        scopes = frozenset(parts[2].split(",")) if len(parts) == 3 else frozenset(SCOPES)
        if (
            len(parts) not in (2, 3)
            or not _NAME.match(parts[0])
            or not _SHA256.match(parts[1])
            or not scopes <= set(SCOPES)
        ):
            log.error(
                "api key line skipped: expected 'NAME SHA256 [SCOPES]' with SCOPES from %s",
                ",".join(SCOPES),
                extra={"file": source, "line": number},
            )
            continue
        entries[parts[1]] = KeyEntry(parts[0], scopes)
    return entries


class KeyRing:
    """The configured keys, kept in step with the key file."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._entries: dict[str, KeyEntry] = {}
        self._signature: tuple[int, int, int] | None = None
        self._unreadable = False
        self._lock = threading.Lock()
        self.refresh()
        if self.is_open:
            log.warning(
                "no API keys configured: the API is open to anyone who can reach it",
                extra={"file": str(path)},
            )

    @property
    def is_open(self) -> bool:
        return not self._entries and not self._unreadable

    def refresh(self) -> None:
        """Re-read the file if it changed since the last read (one ``stat`` otherwise)."""
        if self.path is None:
            return
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            signature = None
        except OSError:
            signature = (-1, -1, -1)
        else:
            signature = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        if signature == self._signature:
            return
        with self._lock:
            if signature == self._signature:
                return
            self._load(signature)

    def _load(self, signature: tuple[int, int, int] | None) -> None:
        self._signature = signature
        if signature is None:
            if self._entries:
                log.warning(
                    "api key file removed: the API is now open", extra={"file": str(self.path)}
                )
            self._entries, self._unreadable = {}, False
            return
        assert self.path is not None
        try:
            text = self.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            self._unreadable = not self._entries
            self._signature = None if self._unreadable else signature
            log.error(
                "api key file cannot be read; keeping the keys read before",
                extra={"file": str(self.path), "error": type(exc).__name__},
            )
            return
        self._entries, self._unreadable = parse_key_file(text, str(self.path)), False
        log.info("api keys loaded", extra={"file": str(self.path), "keys": len(self._entries)})

    def authorize(self, key: str | None, scope: str) -> str | None:
        """The key's name (None when the API is open), or ``AuthError``."""
        self.refresh()
        if self.is_open:
            return None
        if self._unreadable:
            raise AuthError(401, "API keys cannot be read on the server; tell its operator")
        if not key:
            raise AuthError(
                401, "missing API key: send it as 'X-API-Key: KEY' or 'Authorization: Bearer KEY'"
            )
        entry = self._entries.get(hash_key(key))
        if entry is None:
            raise AuthError(401, "invalid API key: it is unknown, revoked or mistyped")
        if scope not in entry.scopes:
            raise AuthError(
                403,
                f"API key '{entry.name}' may not use this route (needs scope '{scope}'; "
                f"it has {','.join(sorted(entry.scopes))})",
            )
        return entry.name
