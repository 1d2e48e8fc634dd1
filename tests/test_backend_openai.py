"""The OpenAI-compatible backend and the request cache, against the stub server on 127.0.0.1."""

from __future__ import annotations

import email.utils
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time

import pytest

from conftest import ROOT, parse_jsonl, to_jsonl
from openai_stub import Reply, StubServer, failing, generation, keyword, slow
from pfx.backends.cache import CACHE_FILE, RequestCache, request_key
from pfx.backends.openai import _retry_after

PAIRS = [{"id": f"p{i}", "prompt": f"What is {i} + {i}?", "chosen": f"GOOD {2 * i}", "rejected": f"{2 * i + 1}"}
         for i in range(6)]


@pytest.fixture
def judge(invoke, tmp_path):
    def run(stub, records=PAIRS, *args):
        summary_path = tmp_path / "summary.json"
        result = invoke(["judge", "--api-base", stub.url, "--model", "stub-judge", "--cache", str(tmp_path / "cache"),
                         "--summary", str(summary_path), *args], input=to_jsonl(records))
        summary = json.loads(summary_path.read_text()) if summary_path.exists() else None
        return result, summary

    return run


def _cache_rows(directory, table: str = "answers") -> int:
    path = os.path.join(directory, CACHE_FILE)
    if not os.path.exists(path):
        return 0
    with sqlite3.connect(path, timeout=5) as connection:
        try:
            return connection.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
        except sqlite3.OperationalError:
            return 0


@pytest.fixture(autouse=True)
def no_proxy_variables(monkeypatch):
    """Requests to the stub go straight to 127.0.0.1 whatever proxy the machine sets."""
    for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)


# -- connections -------------------------------------------------------------------------


def test_backend_keeps_connection_open(judge):
    # One worker sends all 2 x 30 requests (both orders of 30 pairs) on one connection, across
    # the windows of 16 requests in which the judge plans its work.
    pairs = [{**PAIRS[i % len(PAIRS)], "prompt": f"Question {i}: which answer is GOOD?"} for i in range(30)]
    with StubServer(keyword("GOOD")) as stub:
        result, summary = judge(stub, pairs, "--concurrency", "1")
    assert result.exit_code == 0, result
    assert sum(stub.received.values()) == 60
    assert stub.connections == 1
    assert summary["backend"]["connections"] == 1


def test_backend_reconnects_when_server_closes_idle_connection(judge):
    # The server closes every connection after its reply without saying so: each next
    # request finds its kept connection closed and goes again on a new one, sent once.
    with StubServer(keyword("GOOD"), close_after_reply=True) as stub:
        result, summary = judge(stub, PAIRS[:3], "--concurrency", "1", "--backoff", "0")
    assert result.exit_code == 0, result
    assert all(count == 1 for count in stub.received.values())
    assert stub.connections == 6
    assert "retries" not in summary["backend"]


def test_backend_goes_through_http_proxy(invoke, tmp_path, monkeypatch):
    # The stub serves as the proxy: the judge's host name is never resolved, only sent to it.
    with StubServer(keyword("GOOD")) as stub:
        monkeypatch.setenv("http_proxy", stub.url.removesuffix("/v1"))
        monkeypatch.delenv("no_proxy", raising=False)
        monkeypatch.delenv("NO_PROXY", raising=False)
        result = invoke(["judge", "--api-base", "http://judge.invalid/v1", "--model", "stub-judge", "--no-cache"],
                        input=to_jsonl(PAIRS[:1]))
    assert result.exit_code == 0, result
    assert stub.targets == ["http://judge.invalid/v1/chat/completions"] * 2


# -- retries ---------------------------------------------------------------------------


def test_backend_retries_after_500(judge):
    with StubServer(failing(keyword("GOOD"), 2, status=500)) as stub:
        result, summary = judge(stub, PAIRS[:2], "--backoff", "0")
    assert result.exit_code == 0, result
    assert all(count == 3 for count in stub.received.values())
    assert all(count == 1 for count in stub.answered.values())
    assert summary["backend"]["retries"] == 8
    assert [r["judge"]["winner"] for r in result.records] == ["chosen", "chosen"]
    assert "retry 1/5" in result.stderr


def test_backend_honours_retry_after(judge):
    # The backoff would wait 30 s; Retry-After: 0 lets the retry go at once.
    with StubServer(failing(keyword("GOOD"), 1, status=429, retry_after="0")) as stub:
        started = time.monotonic()
        result, _ = judge(stub, PAIRS[:1], "--backoff", "30")
    assert result.exit_code == 0, result
    assert time.monotonic() - started < 10
    assert all(count == 2 for count in stub.received.values())


def test_retry_after_header_forms():
    assert _retry_after("2") == 2.0
    assert _retry_after(None) is None
    assert _retry_after("soon") is None
    future = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 <= _retry_after(future) <= 31


def test_backend_retries_exhausted_fail_run(judge, tmp_path):
    with StubServer(failing(keyword("GOOD"), 99, status=503)) as stub:
        result, _ = judge(stub, PAIRS[:1], "--backoff", "0", "--max-retries", "2")
    assert result.exit_code == 1
    assert "failed after 3 attempts: HTTP 503" in result.stderr
    assert "run the same command again to resume" in result.stderr
    assert _cache_rows(tmp_path / "cache") == 0


def test_backend_failed_request_is_not_cached(judge, tmp_path):
    calls = []

    def first_call_fails(body, attempt):
        calls.append(attempt)
        if len(calls) == 1:
            return Reply(status=500, error="scripted failure")
        return keyword("GOOD")(body, attempt)

    with StubServer(first_call_fails) as stub:
        failed, _ = judge(stub, PAIRS[:1], "--max-retries", "0", "--concurrency", "1")
        assert failed.exit_code == 1
        assert _cache_rows(tmp_path / "cache", "failures") == 1
        result, _ = judge(stub, PAIRS[:1], "--max-retries", "0", "--concurrency", "1")
    assert result.exit_code == 0, result
    # The failed body was sent again and answered once; no body was answered twice.
    assert max(stub.received.values()) == 2
    assert sorted(stub.answered.values()) == [1, 1]


def test_backend_connection_refused(judge):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    class Closed:
        url = f"http://127.0.0.1:{port}/v1"

    result, _ = judge(Closed, PAIRS[:1], "--backoff", "0", "--max-retries", "1")
    assert result.exit_code == 1
    assert "cannot connect" in result.stderr


def test_backend_timeout(judge):
    with StubServer(slow(keyword("GOOD"), 1.0)) as stub:
        result, _ = judge(stub, PAIRS[:1], "--timeout", "0.2", "--max-retries", "0")
    assert result.exit_code == 1
    assert "no response within 0.2 s" in result.stderr


def test_backend_invalid_response_is_retried(judge):
    def broken_then_good(body, attempt):
        return Reply("not used", status=200) if attempt else Reply(status=200, text=None)  # type: ignore[arg-type]

    # A 200 whose message content is null is read as an empty reply, not a failure.
    with StubServer(broken_then_good) as stub:
        result, _ = judge(stub, PAIRS[:1], "--backoff", "0")
    assert result.exit_code == 0, result
    assert result.records[0]["judge"]["verdicts"][0]["raw"] == ""


# -- concurrency, cache ----------------------------------------------------------------------


def test_backend_concurrency_is_bounded(judge):
    with StubServer(slow(keyword("GOOD"), 0.3)) as stub:
        result, _ = judge(stub, PAIRS, "--concurrency", "3")
    assert result.exit_code == 0, result
    assert stub.max_in_flight <= 3
    # Overlap shows the requests run in parallel (a loaded machine may start the third worker late).
    assert stub.max_in_flight >= 2
    assert sum(stub.answered.values()) == 12


def test_backend_repeated_run_costs_nothing(judge):
    with StubServer(keyword("GOOD")) as stub:
        first, _ = judge(stub, PAIRS)
        sent = sum(stub.received.values())
        second, summary = judge(stub, PAIRS)
    assert second.exit_code == 0, second
    assert sent == 12
    assert sum(stub.received.values()) == 12
    assert summary["backend"]["cache_hits"] == 12
    assert summary["backend"]["sent"] == 0
    assert second.records == first.records


def test_backend_no_cache_sends_again(judge, invoke, tmp_path):
    with StubServer(keyword("GOOD")) as stub:
        for _ in range(2):
            result = invoke(["judge", "--api-base", stub.url, "--model", "m", "--no-cache"], input=to_jsonl(PAIRS[:1]))
            assert result.exit_code == 0, result
    assert all(count == 2 for count in stub.received.values())


def test_backend_bad_request_rejects_record(judge, tmp_path):
    def reject_long(body, attempt):
        if "TOO LONG" in body["messages"][-1]["content"]:
            return Reply(status=400, error="maximum context length exceeded")
        return keyword("GOOD")(body, attempt)

    records = [PAIRS[0], {**PAIRS[1], "rejected": "TOO LONG"}, PAIRS[2]]
    rejects = tmp_path / "rejects.jsonl"
    with StubServer(reject_long) as stub:
        failed, _ = judge(stub, records)
        skipped, summary = judge(stub, records, "--on-error", "skip", "--rejects", str(rejects))
    assert failed.exit_code == 65
    assert "<stdin>:2: server rejected the request (HTTP 400: maximum context length exceeded)" in failed.stderr
    assert skipped.exit_code == 0, skipped
    assert [r["id"] for r in skipped.records] == ["p0", "p2"]
    assert parse_jsonl(rejects.read_text())[0]["line"] == 2
    assert summary["judge"]["comparisons"] == 2


def test_backend_key_never_shown(judge, monkeypatch, tmp_path):
    with StubServer(keyword("GOOD"), api_key="right-key-123") as stub:
        monkeypatch.setenv("PFX_TEST_KEY", "wrong-secret-456")
        wrong, _ = judge(stub, PAIRS[:1], "--api-key-env", "PFX_TEST_KEY")
        monkeypatch.setenv("PFX_TEST_KEY", "right-key-123")
        right, summary = judge(stub, PAIRS[:1], "--api-key-env", "PFX_TEST_KEY")
    assert wrong.exit_code == 1
    assert "HTTP 401" in wrong.stderr
    assert "check --api-key-env" in wrong.stderr
    assert "wrong-secret-456" not in wrong.stderr
    assert "[redacted]" in wrong.stderr
    assert right.exit_code == 0, right
    assert "right-key-123" not in right.stdout + right.stderr
    stored = b"".join(path.read_bytes() for path in (tmp_path / "cache").iterdir())
    assert b"right-key-123" not in stored
    assert b"wrong-secret-456" not in stored
    assert b"right-key-123" not in (tmp_path / "summary.json").read_bytes()


def test_backend_wrong_route_is_fatal(judge):
    class WrongBase:
        url = None

    with StubServer(keyword("GOOD")) as stub:
        WrongBase.url = stub.url.replace("/v1", "/nothing-here")
        result, _ = judge(WrongBase, PAIRS[:1], "--backoff", "0")
    assert result.exit_code == 1
    assert "HTTP 404" in result.stderr
    assert "check --api-base and --model" in result.stderr


def test_backend_resume_after_sigkill(tmp_path):
    """Kill a run mid-way with SIGKILL; the rerun requests nothing twice and loses nothing."""
    cache = tmp_path / "cache"
    source = tmp_path / "pairs.jsonl"
    source.write_text(to_jsonl(PAIRS))
    output = tmp_path / "judged.jsonl"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with StubServer(keyword("GOOD")) as stub:
        args = [sys.executable, "-m", "pfx", "judge", "--api-base", stub.url, "--model", "stub-judge", "--cache",
                str(cache), "--concurrency", "2", "-o", str(output), str(source)]
        stub.answer_limit = 5
        process = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while _cache_rows(cache) < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _cache_rows(cache) == 5
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        assert process.returncode == -signal.SIGKILL
        # The killed client's waiting requests are dropped unanswered; the server answers freely again.
        stub.reopen()
        summary = tmp_path / "summary.json"
        rerun = subprocess.run(args + ["--summary", str(summary)], cwd=ROOT, env=env, capture_output=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr.decode()
    records = parse_jsonl(output.read_text())
    assert [r["id"] for r in records] == [p["id"] for p in PAIRS]
    assert all(r["judge"]["winner"] == "chosen" for r in records)
    assert max(stub.answered.values()) == 1
    assert sum(stub.answered.values()) == 12
    assert json.loads(summary.read_text())["backend"]["cache_hits"] == 5


# -- the cache on its own ------------------------------------------------------------------------


def test_cache_roundtrip_and_failures(tmp_path):
    cache = RequestCache(str(tmp_path))
    request = {"model": "m", "prompt": "hi", "sample": 0}
    key = request_key(request)
    assert key == request_key({"sample": 0, "prompt": "hi", "model": "m"})
    cache.record_failure(key, request, "HTTP 500")
    assert cache.get(key) is None
    cache.put(key, request, {"text": "hello"})
    cache.close()
    reopened = RequestCache(str(tmp_path))
    assert reopened.get(key) == {"text": "hello"}
    assert reopened.count() == 1
    reopened.close()


def test_cache_default_dir_from_environment(monkeypatch, tmp_path):
    from pfx.backends.cache import default_cache_dir

    monkeypatch.setenv("PFX_CACHE", str(tmp_path / "elsewhere"))
    assert default_cache_dir() == str(tmp_path / "elsewhere")
    monkeypatch.delenv("PFX_CACHE")
    assert default_cache_dir().endswith(os.path.join(".cache", "pfx"))


def test_backend_logprobs_kept(invoke, tmp_path):
    with StubServer(generation) as stub:
        result = invoke(["generate", "--api-base", stub.url, "--model", "m", "--cache", str(tmp_path), "-n", "1",
                         "--logprobs"], input=to_jsonl([{"prompt": "Hi"}]))
    assert result.exit_code == 0, result
    assert result.records[0]["completion_logps"] == [-0.75]
    assert stub.bodies[0]["logprobs"] is True
    assert stub.bodies[0]["top_logprobs"] == 1


def test_backend_interrupt_exits_130_and_resumes(tmp_path):
    """Ctrl-C (SIGINT) mid-run exits 130; the rerun completes from the cache plus the missing requests."""
    cache = tmp_path / "cache"
    source = tmp_path / "pairs.jsonl"
    source.write_text(to_jsonl(PAIRS))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with StubServer(slow(keyword("GOOD"), 0.2)) as stub:
        args = [sys.executable, "-m", "pfx", "judge", "--api-base", stub.url, "--model", "stub-judge", "--cache",
                str(cache), "--concurrency", "2", str(source)]
        process = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while _cache_rows(cache) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
        cached_before = _cache_rows(cache)
        rerun = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, timeout=120)
    assert process.returncode == 130, stderr.decode()
    assert "interrupted" in stderr.decode()
    assert "Traceback" not in stderr.decode()
    assert rerun.returncode == 0, rerun.stderr.decode()
    assert [r["id"] for r in parse_jsonl(rerun.stdout.decode())] == [p["id"] for p in PAIRS]
    assert cached_before >= 3
    # Only requests in flight at the interrupt can be answered twice.
    assert sum(count - 1 for count in stub.answered.values()) <= 2


def test_backend_shards_share_one_cache(tmp_path):
    """Two shard processes write one cache at the same time; their outputs together cover the input once."""
    source = tmp_path / "pairs.jsonl"
    source.write_text(to_jsonl(PAIRS))
    with StubServer(slow(keyword("GOOD"), 0.05)) as stub:
        processes = [
            subprocess.Popen([sys.executable, "-m", "pfx", "judge", "--api-base", stub.url, "--model", "stub-judge",
                              "--cache", str(tmp_path / "cache"), "--shard", f"{index}/2", "-o",
                              str(tmp_path / f"shard{index}.jsonl"), str(source)],
                             cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            for index in range(2)
        ]
        for process in processes:
            _, stderr = process.communicate(timeout=120)
            assert process.returncode == 0, stderr.decode()
    ids = [r["id"] for index in range(2) for r in parse_jsonl((tmp_path / f"shard{index}.jsonl").read_text())]
    assert sorted(ids) == sorted(p["id"] for p in PAIRS)
    assert _cache_rows(tmp_path / "cache") == 12
    assert max(stub.answered.values()) == 1
