"""A backend for OpenAI-compatible chat-completions servers, on the standard library only.

Requests go to ``POST {api_base}/chat/completions`` from a thread pool of
``concurrency`` workers. HTTP 429, HTTP 5xx, timeouts and connection errors
are retried up to ``max_retries`` times, waiting ``backoff * 2**attempt``
seconds or the time the server's ``Retry-After`` header requests. HTTP 400, 413 and
422 reject that one request (the record goes through ``--on-error``). Any
other client error (a wrong key, model or URL) and used-up retries stop the
run with exit 1.

Each worker thread keeps its HTTP/1.1 connection open between requests, so a
run pays one TCP (and TLS) handshake per worker, not one per request. A
server that closed an idle connection gets the request again on a new one.
Behind a proxy from the ``http_proxy``/``https_proxy`` variables, requests go
through urllib instead, one connection each.

The API key comes from the environment variable the user names. It is sent
only in the ``Authorization`` header and removed from every error text
before that text is logged or raised.
"""

from __future__ import annotations

import email.utils
import http.client
import os
import socket
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any, Callable, Iterator

import click
import orjson

from pfx.backends import BackendError, Completion, CompletionRequest, RequestFailed, RequestRejected
from pfx.records import is_conversation

RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})
REJECT_STATUSES = frozenset({400, 413, 422})
MAX_RETRY_WAIT = 600.0  # seconds; a longer Retry-After is cut to this
ERROR_TEXT_LIMIT = 300  # characters of a server error body kept in messages


def check_api_base(api_base: str) -> None:
    """Raise ``click.UsageError`` unless ``api_base`` is an http(s) URL."""
    parsed = urllib.parse.urlparse(api_base)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise click.UsageError(f"--api-base {api_base!r} is not an http:// or https:// URL")
    if parsed.username or parsed.password:
        raise click.UsageError("--api-base must not contain a user name or password; put the key in the variable named by --api-key-env")


def read_api_key(variable: str | None) -> str | None:
    """Return the key stored in the environment variable ``variable``, or None when no variable is named."""
    if variable is None:
        return None
    key = os.environ.get(variable)
    if not key:
        raise click.UsageError(f"--api-key-env {variable}: the environment variable {variable} is not set or empty")
    return key


class _Retry(Exception):
    """A failed attempt that may succeed when repeated."""

    def __init__(self, reason: str, wait: float | None = None):
        super().__init__(reason)
        self.reason = reason
        self.wait = wait


class OpenAIBackend:
    """Send completion requests to an OpenAI-compatible server with bounded concurrency and retries."""

    kind = "openai"

    def __init__(
        self,
        api_base: str,
        model: str,
        api_key: str | None = None,
        concurrency: int = 8,
        timeout: float = 120.0,
        max_retries: int = 5,
        backoff: float = 1.0,
        log: Callable[[str], None] | None = None,
    ):
        self.url = api_base.rstrip("/") + "/chat/completions"
        parsed = urllib.parse.urlparse(self.url)
        self._scheme, self._host, self._port, self._path = parsed.scheme, parsed.hostname, parsed.port, parsed.path
        proxied = parsed.scheme in urllib.request.getproxies()
        self._proxied = proxied and not urllib.request.proxy_bypass(parsed.hostname or "")
        self._connections = threading.local()
        self._open: list[http.client.HTTPConnection] = []
        # One pool for the whole run, so that its threads, and their connections, outlive a window.
        self._pool: ThreadPoolExecutor | None = None
        self.model_id = model
        self._api_key = api_key
        self.concurrency = concurrency
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self._log = log or (lambda message: None)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.counts: Counter = Counter()

    # -- public API ----------------------------------------------------------

    def run(self, requests: list[CompletionRequest]) -> Iterator[tuple[int, Completion | RequestRejected | RequestFailed]]:
        """Yield ``(index, result)`` as responses arrive.

        After the first ``RequestFailed``, requests not yet started are not
        sent; requests in flight are awaited and their results yielded, so
        the caller can cache them.
        """
        if not requests:
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="pfx-openai")
        pending: dict[Future, int] = {self._pool.submit(self._send, request): index
                                      for index, request in enumerate(requests)}
        try:
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    index = pending.pop(future)
                    try:
                        result = future.result()
                    except BackendError as exc:
                        self._stop.set()
                        yield index, RequestFailed(str(exc))
                        continue
                    if result is not None:
                        yield index, result
        finally:
            if pending:
                # The caller stopped reading (an interrupt): start no further request, and
                # let the ones in flight finish before the next window or close.
                self._stop.set()
                wait(pending)
        self._stop.clear()

    def close(self) -> None:
        self._stop.set()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        with self._lock:
            for connection in self._open:
                connection.close()
            self._open.clear()

    # -- one request ---------------------------------------------------------

    def _body(self, request: CompletionRequest) -> bytes:
        # A plain-string prompt is sent as one user message: chat servers take no raw text.
        messages = request.prompt if is_conversation(request.prompt) else [{"role": "user", "content": request.prompt}]
        body: dict[str, Any] = {
            "model": self.model_id,
            "messages": messages,
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "top_p": request.top_p,
            "n": 1,
        }
        if request.seed is not None:
            # Distinct seeds per sample, so that servers that honour seeds give distinct samples.
            body["seed"] = request.seed + request.sample
        if request.top_logprobs:
            body["logprobs"] = True
            body["top_logprobs"] = request.top_logprobs
        return orjson.dumps(body)

    def _send(self, request: CompletionRequest) -> Completion | RequestRejected | None:
        """Send one request with retries; None when the run stopped before it started."""
        body = self._body(request)
        for attempt in range(self.max_retries + 1):
            if self._stop.is_set():
                return None
            try:
                return self._attempt(body)
            except _Retry as retry:
                self._count("retries")
                if attempt == self.max_retries:
                    raise BackendError(
                        f"request to {self.url} failed after {attempt + 1} attempts: {retry.reason}"
                    ) from None
                wait_seconds = retry.wait if retry.wait is not None else self.backoff * (2**attempt)
                wait_seconds = min(wait_seconds, MAX_RETRY_WAIT)
                self._log(f"retry {attempt + 1}/{self.max_retries} in {wait_seconds:.1f} s: {retry.reason}")
                # Waiting on the stop event ends the wait early when the run stops.
                self._stop.wait(wait_seconds)
        raise AssertionError("unreachable")

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        return headers

    def _attempt(self, body: bytes) -> Completion | RequestRejected:
        if self._proxied:
            return self._attempt_through_proxy(body)
        while True:
            reused = False
            try:
                connection, reused = self._connection()
                connection.request("POST", self._path, body=body, headers=self._headers())
                response = connection.getresponse()
                payload = response.read()
            except (TimeoutError, socket.timeout):
                self._drop_connection()
                raise _Retry(f"no response within {self.timeout:g} s") from None
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as exc:
                self._drop_connection()
                if reused:
                    # Most likely the server closed the idle connection before this request came: send it again.
                    continue
                raise _Retry(f"connection failed: {self._redact(type(exc).__name__ + ': ' + str(exc))}") from None
            except (OSError, http.client.HTTPException) as exc:
                self._drop_connection()
                raise _Retry(f"cannot connect: {self._redact(str(exc) or type(exc).__name__)}") from None
            if response.will_close:
                self._drop_connection()
            if response.status >= 400:
                return self._http_error(response.status, payload, response.headers.get("Retry-After"))
            self._count("responses")
            return self._completion(payload)

    def _connection(self) -> tuple[http.client.HTTPConnection, bool]:
        """Return this thread's open connection, or a new one; and whether it served a request before.

        Raises ``OSError`` when a new connection cannot be made.
        """
        connection = getattr(self._connections, "current", None)
        if connection is not None:
            return connection, True
        if self._scheme == "https":
            connection = http.client.HTTPSConnection(self._host, self._port, timeout=self.timeout,
                                                     context=ssl.create_default_context())
        else:
            connection = http.client.HTTPConnection(self._host, self._port, timeout=self.timeout)
        connection.connect()
        # http.client sends the headers and the body in two writes. On a kept connection, Nagle's
        # algorithm delays the body until the headers are acknowledged, and a server that delays
        # its acknowledgements adds about 40 ms to every request.
        connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._connections.current = connection
        with self._lock:
            self._open.append(connection)
        self._count("connections")
        return connection, False

    def _drop_connection(self) -> None:
        connection = getattr(self._connections, "current", None)
        if connection is not None:
            connection.close()
            self._connections.current = None
            with self._lock:
                self._open.remove(connection)

    def _attempt_through_proxy(self, body: bytes) -> Completion | RequestRejected:
        http_request = urllib.request.Request(self.url, data=body, headers=self._headers(), method="POST")
        try:
            with urllib.request.urlopen(http_request, timeout=self.timeout) as response:
                payload = response.read()
        except urllib.error.HTTPError as exc:
            try:
                text = exc.read()
            except (OSError, http.client.HTTPException):
                text = b""
            return self._http_error(exc.code, text, exc.headers.get("Retry-After"))
        except (TimeoutError, socket.timeout):
            raise _Retry(f"no response within {self.timeout:g} s") from None
        except urllib.error.URLError as exc:
            raise _Retry(f"cannot connect: {self._redact(str(exc.reason))}") from None
        except (ConnectionError, http.client.HTTPException) as exc:
            raise _Retry(f"connection failed: {self._redact(type(exc).__name__ + ': ' + str(exc))}") from None
        self._count("responses")
        return self._completion(payload)

    def _http_error(self, status: int, body: bytes, retry_after: str | None) -> RequestRejected:
        text = body.decode("utf-8", errors="replace")
        reason = f"HTTP {status}: {self._redact(_error_message(text))}"
        self._count(f"HTTP {status}")
        if status in RETRY_STATUSES or status >= 500:
            raise _Retry(reason, _retry_after(retry_after))
        if status in REJECT_STATUSES:
            return RequestRejected(f"server rejected the request ({reason})")
        hint = ""
        if status in (401, 403):
            hint = " (check --api-key-env)"
        elif status == 404:
            hint = " (check --api-base and --model)"
        raise BackendError(f"{self.url}: {reason}{hint}")

    def _completion(self, payload: bytes) -> Completion:
        try:
            data = orjson.loads(payload)
            choice = data["choices"][0]
            message = choice.get("message") or {}
            text = message.get("content")
        except (orjson.JSONDecodeError, KeyError, IndexError, TypeError, AttributeError):
            raise _Retry(f"response is not a chat completion: {self._redact(payload[:ERROR_TEXT_LIMIT].decode('utf-8', 'replace'))}") from None
        logprobs = None
        raw_logprobs = choice.get("logprobs")
        if isinstance(raw_logprobs, dict) and isinstance(raw_logprobs.get("content"), list):
            logprobs = raw_logprobs["content"]
        return Completion(text=text or "", finish_reason=choice.get("finish_reason"), logprobs=logprobs)

    def _redact(self, text: str) -> str:
        if self._api_key:
            text = text.replace(self._api_key, "[redacted]")
        return text

    def _count(self, name: str) -> None:
        with self._lock:
            self.counts[name] += 1


def _error_message(text: str) -> str:
    """Return the ``error.message`` of an OpenAI-style error body, or the body's start."""
    try:
        data = orjson.loads(text)
        message = data["error"]["message"] if isinstance(data.get("error"), dict) else data.get("error") or data.get("message")
        if isinstance(message, str):
            text = message
    except (orjson.JSONDecodeError, AttributeError, KeyError, TypeError):
        pass
    text = " ".join(text.split())
    return text[:ERROR_TEXT_LIMIT] + ("..." if len(text) > ERROR_TEXT_LIMIT else "")


def _retry_after(value: str | None) -> float | None:
    """Return the seconds a ``Retry-After`` header requests (delta seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
