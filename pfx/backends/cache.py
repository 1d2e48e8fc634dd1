"""An on-disk cache of completed model requests, so a killed or repeated run repeats no request.

The cache is one SQLite database in WAL mode. Each completed request is one
committed row, so a process killed at any point leaves every earlier answer
readable and no torn entry. The key is a SHA-256 of the canonical JSON of the
full request (backend model name, messages or prompt, sampling parameters and
sample index); API keys and server addresses are never part of the key or the
stored value.

A request that failed is recorded in a separate table with its error, for the
summary and for debugging; it is never returned as an answer, so the next run
sends it again.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
import time
from typing import Any

import orjson

CACHE_FILE = "requests.sqlite"
CACHE_ENV = "PFX_CACHE"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, request BLOB NOT NULL, answer BLOB NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS failures (key TEXT NOT NULL, request BLOB NOT NULL, error TEXT NOT NULL, created REAL NOT NULL);
"""


def default_cache_dir() -> str:
    """Return ``$PFX_CACHE`` or ``~/.cache/pfx``."""
    return os.environ.get(CACHE_ENV) or os.path.join(os.path.expanduser("~"), ".cache", "pfx")


def request_key(request: dict[str, Any]) -> str:
    """Return the cache key of a request: SHA-256 of its JSON with sorted keys."""
    return hashlib.sha256(orjson.dumps(request, option=orjson.OPT_SORT_KEYS)).hexdigest()


class RequestCache:
    """Completed answers by request key, in ``DIR/requests.sqlite``.

    Safe to use from several threads (one connection behind a lock) and from
    several processes (SQLite's own locking, with a busy timeout).
    """

    def _enable_wal(self) -> None:
        # Switching to WAL needs a moment of exclusive access, and SQLite returns
        # "database is locked" at once, without the busy timeout, while another
        # process (a second shard) holds the file. Retry for up to 30 s.
        deadline = time.monotonic() + 30.0
        while True:
            try:
                self._connection.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as error:
                if "locked" not in str(error) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def __init__(self, directory: str):
        os.makedirs(directory, exist_ok=True)
        self.path = os.path.join(directory, CACHE_FILE)
        self._lock = threading.Lock()
        self._connection = sqlite3.connect(self.path, timeout=30.0, check_same_thread=False, isolation_level=None)
        self._enable_wal()
        # NORMAL in WAL mode: a commit survives a killed process; only a power
        # loss can drop the last commits, and never tears the database.
        self._connection.execute("PRAGMA synchronous=NORMAL")
        self._connection.executescript(_SCHEMA)
        self.hits = 0
        self.stored = 0
        self.failures_recorded = 0

    def get(self, key: str) -> dict[str, Any] | None:
        """Return the stored answer for ``key``, or None."""
        with self._lock:
            row = self._connection.execute("SELECT answer FROM answers WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        self.hits += 1
        return orjson.loads(row[0])

    def put(self, key: str, request: dict[str, Any], answer: dict[str, Any]) -> None:
        """Store one completed answer (committed before this returns)."""
        with self._lock:
            self._connection.execute(
                "INSERT OR REPLACE INTO answers (key, request, answer, created) VALUES (?, ?, ?, ?)",
                (key, orjson.dumps(request), orjson.dumps(answer), time.time()),
            )
        self.stored += 1

    def record_failure(self, key: str, request: dict[str, Any], error: str) -> None:
        """Record a failed request; it stays a miss, so a later run retries it."""
        with self._lock:
            self._connection.execute(
                "INSERT INTO failures (key, request, error, created) VALUES (?, ?, ?, ?)",
                (key, orjson.dumps(request), error, time.time()),
            )
        self.failures_recorded += 1

    def count(self) -> int:
        with self._lock:
            return int(self._connection.execute("SELECT COUNT(*) FROM answers").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._connection.close()
