"""A small OpenAI-compatible chat-completions server for tests, on ``http.server``.

It listens on 127.0.0.1 on a free port and answers ``POST /v1/chat/completions``
with scripted replies. A script is a function ``(body, attempt) -> Reply``,
where ``attempt`` counts earlier requests with the same body (from 0). The
server counts, per request body, how many requests it received and how many
it answered with HTTP 200, so tests can prove that nothing was requested
twice. It speaks HTTP/1.1 and keeps connections open, and it counts the
client connections it saw (``connections``). With ``close_after_reply`` it
closes each connection right after its reply without announcing it, as a
server does with a connection it finds idle.

Scripts here: ``first_position`` (always picks answer A), ``longer_answer``,
``keyword`` (picks the answer with a marker word), ``malformed``, ``scores``,
``generation`` (a distinct completion per request), and the wrappers
``failing`` (HTTP 500 or 429 before succeeding) and ``slow``.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
import urllib.parse
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable


class _Server(ThreadingHTTPServer):
    # The default listen backlog of 5 drops connections when more clients
    # connect at once, and each dropped SYN costs the client a 1 s retransmit.
    request_queue_size = 128


@dataclass
class Reply:
    text: str = ""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    error: str | None = None  # error message for a status other than 200
    logprobs: list[dict[str, Any]] | None = None


Script = Callable[[dict[str, Any], int], Reply]

_ANSWER = re.compile(r"\[Start of (?:Assistant )?(?:Answer )?([AB])(?:'s Answer)?\]\n(.*?)\n\[End of", re.DOTALL)


def answers_in(body: dict[str, Any]) -> dict[str, str]:
    """Return the answers shown as A and B in a judge request built from the built-in templates."""
    user = next(message["content"] for message in body["messages"] if message["role"] == "user")
    return {position: text for position, text in _ANSWER.findall(user)}


def first_position(body: dict[str, Any], attempt: int) -> Reply:
    return Reply("Both answers are fine; the first reads better.\nVerdict: [[A]]")


def longer_answer(body: dict[str, Any], attempt: int) -> Reply:
    answers = answers_in(body)
    winner = "A" if len(answers["A"]) >= len(answers["B"]) else "B"
    return Reply(f"Answer {winner} is more detailed.\nVerdict: [[{winner}]]")


def keyword(marker: str = "GOOD") -> Script:
    """Pick the answer that contains ``marker``; a tie when both or neither do."""

    def script(body: dict[str, Any], attempt: int) -> Reply:
        answers = answers_in(body)
        has = {position: marker in text for position, text in answers.items()}
        winner = "C"
        if has["A"] != has["B"]:
            winner = "A" if has["A"] else "B"
        return Reply(f"Looking for correctness.\nVerdict: [[{winner}]]")

    return script


def malformed(body: dict[str, Any], attempt: int) -> Reply:
    return Reply("I think the first one is better, but it is hard to say.")


def scores(first: float, second: float) -> Script:
    def script(body: dict[str, Any], attempt: int) -> Reply:
        return Reply(f"Evidence: both answer the question.\nScore of Assistant A: {first:g}\nScore of Assistant B: {second:g}")

    return script


def generation(body: dict[str, Any], attempt: int) -> Reply:
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:8]
    logprobs = None
    if body.get("logprobs"):
        logprobs = [{"token": "ok", "logprob": -0.5, "top_logprobs": [{"token": "ok", "logprob": -0.5}]},
                    {"token": "!", "logprob": -0.25, "top_logprobs": [{"token": "!", "logprob": -0.25}]}]
    return Reply(f"completion {digest} seed {body.get('seed')}", logprobs=logprobs)


def failing(inner: Script, failures: int, status: int = 500, retry_after: str | None = None) -> Script:
    """Answer the first ``failures`` attempts of each body with ``status``, then run ``inner``."""

    def script(body: dict[str, Any], attempt: int) -> Reply:
        if attempt < failures:
            headers = {"Retry-After": retry_after} if retry_after is not None else {}
            return Reply(status=status, headers=headers, error=f"scripted failure {attempt + 1} of {failures}")
        return inner(body, attempt)

    return script


def slow(inner: Script, delay: float) -> Script:
    def script(body: dict[str, Any], attempt: int) -> Reply:
        reply = inner(body, attempt)
        reply.delay = delay
        return reply

    return script


class StubServer:
    """The server, its counters and its switches. Use as a context manager."""

    def __init__(self, script: Script = first_position, api_key: str | None = None, port: int = 0,
                 close_after_reply: bool = False):
        self.script = script
        self.api_key = api_key
        self.close_after_reply = close_after_reply
        self.peers: set[tuple[str, int]] = set()
        self.targets: list[str] = []
        self.received: Counter = Counter()
        self.answered: Counter = Counter()
        self.bodies: list[dict[str, Any]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        # While set, requests beyond ``answer_limit`` answered ones wait until ``reopen``.
        self.answer_limit: int | None = None
        self.granted = 0
        self.epoch = 0
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", port), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def _grant(self, epoch: int) -> bool | None:
        """Reserve the right to answer one more request under ``answer_limit``; None for a request of an old epoch."""
        with self._lock:
            if epoch != self.epoch:
                return None
            if self.answer_limit is not None and self.granted >= self.answer_limit:
                return False
            self.granted += 1
            return True

    def reopen(self) -> None:
        """Drop the waiting requests unanswered (their client is gone) and lift ``answer_limit``."""
        with self._lock:
            self.epoch += 1
            self.answer_limit = None

    @property
    def connections(self) -> int:
        with self._lock:
            return len(self.peers)

    def total_answered(self) -> int:
        with self._lock:
            return sum(self.answered.values())

    def __enter__(self) -> "StubServer":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.reopen()
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes. Without this, Nagle's algorithm delays
            # the body of a reply on a kept connection until the client acknowledges the headers.
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                raw = self.rfile.read(length)
                body = json.loads(raw)
                key = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
                with stub._lock:
                    epoch = stub.epoch
                    attempt = stub.received[key]
                    stub.received[key] += 1
                    stub.bodies.append(body)
                    stub.peers.add(self.client_address[:2])
                    stub.in_flight += 1
                    stub.max_in_flight = max(stub.max_in_flight, stub.in_flight)
                try:
                    self._respond(body, key, attempt, epoch)
                finally:
                    with stub._lock:
                        stub.in_flight -= 1
                if stub.close_after_reply:
                    self.close_connection = True

            def _respond(self, body: dict[str, Any], key: str, attempt: int, epoch: int) -> None:
                if stub.api_key is not None and self.headers.get("Authorization") != f"Bearer {stub.api_key}":
                    # Echo what arrived, as some servers do, so tests can check that pfx never shows it.
                    self._send(401, {"error": {"message": f"invalid key in header: {self.headers.get('Authorization')}"}})
                    return
                # A client that takes this server for its proxy sends the absolute URL.
                stub.targets.append(self.path)
                if urllib.parse.urlparse(self.path).path != "/v1/chat/completions":
                    self._send(404, {"error": {"message": f"no route {self.path}"}})
                    return
                while True:
                    grant = stub._grant(epoch)
                    if grant is None:
                        self.close_connection = True
                        return
                    if grant:
                        break
                    time.sleep(0.02)
                reply = stub.script(body, attempt)
                if reply.delay:
                    time.sleep(reply.delay)
                if reply.status != 200:
                    self._send(reply.status, {"error": {"message": reply.error or "scripted error"}}, reply.headers)
                    return
                choice: dict[str, Any] = {"index": 0, "message": {"role": "assistant", "content": reply.text},
                                          "finish_reason": "stop"}
                if reply.logprobs is not None:
                    choice["logprobs"] = {"content": reply.logprobs}
                self._send(200, {"id": "stub", "object": "chat.completion", "model": body.get("model"), "choices": [choice]})
                with stub._lock:
                    stub.answered[key] += 1

            def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for name, value in (headers or {}).items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        return Handler


def main() -> None:
    """Serve a scripted judge on 127.0.0.1 until interrupted, for trying pfx judge by hand."""
    import argparse
    import time

    scripts = {"longer": longer_answer, "first": first_position, "malformed": malformed, "generation": generation}
    parser = argparse.ArgumentParser(description="OpenAI-compatible stand-in server for pfx tests and the tutorial.")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--script", choices=sorted(scripts), default="longer", help="how the server answers")
    args = parser.parse_args()
    with StubServer(scripts[args.script], port=args.port) as server:
        print(f"serving {args.script!r} answers at {server.url} (Ctrl-C stops)", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
