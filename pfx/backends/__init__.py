"""Model backends for ``pfx generate`` and ``pfx judge``: one request type, two backends, one cache.

- ``local``: a Hugging Face causal LM run with transformers ``generate``
  (``pfx.backends.local``).
- ``openai``: any OpenAI-compatible chat-completions server: vLLM, TGI,
  llama.cpp server, Ollama or a hosted API (``pfx.backends.openai``).

Commands build ``CompletionRequest`` objects and hand them to a ``Completer``,
which answers what it can from the on-disk cache, sends the rest to the
backend and stores each answer as soon as it arrives. Importing this module
imports neither torch nor transformers.
"""

from __future__ import annotations

import functools
import sys
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Protocol

import click

from pfx.backends.cache import RequestCache, default_cache_dir, request_key
from pfx.errors import RuntimeFailure
from pfx.model.config import ModelOptions
from pfx.records import Text

BACKENDS = ("auto", "local", "openai")
F = Callable[..., Any]


@dataclass
class CompletionRequest:
    """One completion to produce: a prompt (string or conversation) and sampling parameters.

    ``sample`` is the index of this sample among several for the same prompt;
    it is part of the cache key, so that K samples are K cache entries.
    ``top_logprobs`` asks for that many alternatives per generated token (0: no log-probs).
    ``allow_truncation`` is not part of the cache key: a request it affects is
    rejected, and rejections are never cached.
    """

    prompt: Text
    max_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    sample: int = 0
    top_logprobs: int = 0
    # False: a prompt longer than the model's budget is rejected instead of cut (local backend).
    allow_truncation: bool = True

    def cache_payload(self, backend: "Backend") -> dict[str, Any]:
        return {
            "backend": backend.kind,
            "model": backend.model_id,
            "prompt": self.prompt,
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "seed": self.seed,
            "sample": self.sample,
            "top_logprobs": self.top_logprobs,
        }


@dataclass
class Completion:
    """A backend's answer: the generated text and, when available, per-token log-probs.

    ``logprobs`` follows the OpenAI chat shape: a list of
    ``{"token", "logprob", "top_logprobs": [{"token", "logprob"}, ...]}``.
    """

    text: str
    finish_reason: str | None = None
    logprobs: list[dict[str, Any]] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "finish_reason": self.finish_reason, "logprobs": self.logprobs}

    @classmethod
    def from_dict(cls, value: dict[str, Any]) -> "Completion":
        return cls(value["text"], value.get("finish_reason"), value.get("logprobs"))

    @property
    def logprob_sum(self) -> float | None:
        """Sum of the generated tokens' log-probs, or None when the backend returned none."""
        if not self.logprobs:
            return None
        return float(sum(entry["logprob"] for entry in self.logprobs))


@dataclass
class RequestRejected:
    """A request the backend cannot serve for reasons of its own input (HTTP 400, a prompt too long).

    Commands treat it as a bad record under ``--on-error``; it is never cached as an answer.
    """

    reason: str
    field: str | None = None


@dataclass
class RequestFailed:
    """A request the backend could not complete (retries used up, wrong key, server gone).

    The ``Completer`` records it in the cache's failure table, lets the
    requests in flight finish, and then stops the run with ``BackendError``.
    """

    reason: str


class BackendError(RuntimeFailure):
    """The backend cannot go on (unreachable server, wrong key, retries used up): exit 1."""


class Backend(Protocol):
    kind: str
    model_id: str

    def run(self, requests: list[CompletionRequest]) -> Iterator[tuple[int, Completion | RequestRejected | RequestFailed]]:
        """Yield ``(index into requests, result)`` as results arrive, in any order.

        After a ``RequestFailed`` the backend starts no further request, but
        still yields the results of requests already in flight.
        """
        ...

    def close(self) -> None: ...


@dataclass
class CompleterStats:
    requests: int = 0
    cache_hits: int = 0
    sent: int = 0
    rejected: int = 0


class Completer:
    """Answer requests from the cache where possible and from the backend otherwise.

    Each answer is stored in the cache as soon as it arrives, so a run killed
    at any point resumes without repeating a completed request. Identical
    requests within one call are sent once.
    """

    def __init__(self, backend: Backend, cache: RequestCache | None):
        self.backend = backend
        self.cache = cache
        self.stats = CompleterStats()

    def complete(self, requests: list[CompletionRequest]) -> list[Completion | RequestRejected]:
        """Return one result per request, in request order."""
        results: list[Completion | RequestRejected | None] = [None] * len(requests)
        payloads = [request.cache_payload(self.backend) for request in requests]
        keys = [request_key(payload) for payload in payloads]
        self.stats.requests += len(requests)

        # Cache lookups; identical misses are grouped under their first index.
        waiting: dict[str, list[int]] = {}
        for index, key in enumerate(keys):
            if key in waiting:
                waiting[key].append(index)
                continue
            cached = self.cache.get(key) if self.cache is not None else None
            if cached is not None:
                results[index] = Completion.from_dict(cached)
                self.stats.cache_hits += 1
            else:
                waiting[key] = [index]

        # Backend calls for the misses, stored as each one completes.
        misses = list(waiting.values())
        to_send = [requests[indices[0]] for indices in misses]
        self.stats.sent += len(to_send)
        failed: RequestFailed | None = None
        for position, result in self.backend.run(to_send):
            indices = misses[position]
            key, payload = keys[indices[0]], payloads[indices[0]]
            if isinstance(result, Completion):
                if self.cache is not None:
                    self.cache.put(key, payload, result.to_dict())
            else:
                self.stats.rejected += isinstance(result, RequestRejected)
                if self.cache is not None:
                    self.cache.record_failure(key, payload, result.reason)
                if isinstance(result, RequestFailed):
                    failed = failed or result
                    continue
            for index in indices:
                results[index] = result
        if failed is not None:
            resume = ""
            if self.cache is not None:
                resume = f". Completed requests are cached in {self.cache.path}; run the same command again to resume"
            raise BackendError(failed.reason + resume)
        assert all(result is not None for result in results)
        return results  # type: ignore[return-value]

    def summary(self) -> dict[str, Any]:
        return {
            "requests": self.stats.requests,
            "cache_hits": self.stats.cache_hits,
            "sent": self.stats.sent,
            "rejected_by_backend": self.stats.rejected,
            **getattr(self.backend, "counts", {}),
        }

    def close(self) -> None:
        self.backend.close()
        if self.cache is not None:
            self.cache.close()


# -- command-line options -------------------------------------------------------


@dataclass
class BackendOptions:
    """Options that choose and configure the backend (see ``backend_options``)."""

    backend: str = "auto"
    api_base: str | None = None
    api_key_env: str | None = None
    concurrency: int = 8
    timeout: float = 120.0
    max_retries: int = 5
    backoff: float = 1.0
    cache_dir: str | None = None
    no_cache: bool = False

    @property
    def kind(self) -> str:
        if self.backend != "auto":
            return self.backend
        return "openai" if self.api_base else "local"


def backend_options(func: F) -> F:
    """Add --backend, --api-base, --api-key-env, --concurrency, --timeout, --max-retries, --backoff, --cache, --no-cache."""

    @click.option("--backend", type=click.Choice(BACKENDS), default="auto", show_default=True,
                  help="local: run --model with transformers. openai: send requests to --api-base. auto: openai when --api-base is given.")
    @click.option("--api-base", metavar="URL",
                  help="Base URL of an OpenAI-compatible server, for example http://127.0.0.1:8000/v1.")
    @click.option("--api-key-env", metavar="NAME",
                  help="Name of the environment variable that holds the API key (the key itself never goes on the command line).")
    @click.option("--concurrency", type=click.IntRange(min=1), default=8, show_default=True,
                  help="Requests in flight at once (openai backend).")
    @click.option("--timeout", type=click.FloatRange(min=0.1), default=120.0, show_default=True,
                  help="Seconds to wait for one server response before retrying.")
    @click.option("--max-retries", type=click.IntRange(min=0), default=5, show_default=True,
                  help="Retries per request after HTTP 429, 5xx, timeouts and connection errors.")
    @click.option("--backoff", type=click.FloatRange(min=0.0), default=1.0, show_default=True,
                  help="Seconds before the first retry; doubles with each retry. A Retry-After header overrides it.")
    @click.option("--cache", "cache_dir", type=click.Path(file_okay=False), metavar="DIR",
                  help="Cache directory for completed requests [default: $PFX_CACHE or ~/.cache/pfx].")
    @click.option("--no-cache", is_flag=True, help="Neither read nor write the request cache.")
    @functools.wraps(func)
    def wrapper(*args: Any, backend: str, api_base: str | None, api_key_env: str | None, concurrency: int,
                timeout: float, max_retries: int, backoff: float, cache_dir: str | None, no_cache: bool,
                **kwargs: Any) -> Any:
        if no_cache and cache_dir:
            raise click.UsageError("--cache and --no-cache exclude each other")
        options = BackendOptions(backend=backend, api_base=api_base, api_key_env=api_key_env, concurrency=concurrency,
                                 timeout=timeout, max_retries=max_retries, backoff=backoff, cache_dir=cache_dir,
                                 no_cache=no_cache)
        return func(*args, backend_options=options, **kwargs)

    return wrapper


def check_backend_options(options: BackendOptions, model_options: ModelOptions) -> None:
    """Raise ``click.UsageError`` for a backend configuration that cannot work; called before reading input."""
    if not model_options.model:
        raise click.UsageError(
            "--model is required: a local model directory or hub id, or with --api-base the model name the server serves"
        )
    if options.kind == "openai":
        from pfx.backends.openai import check_api_base, read_api_key

        if not options.api_base:
            raise click.UsageError("--backend openai needs --api-base URL, for example --api-base http://127.0.0.1:8000/v1")
        check_api_base(options.api_base)
        read_api_key(options.api_key_env)
    elif options.api_base or options.api_key_env:
        raise click.UsageError("--api-base and --api-key-env apply only to --backend openai")


def records_per_window(options: BackendOptions, model_options: ModelOptions, requests_per_record: int) -> int:
    """Return how many input records a command plans and completes together.

    A window is sent as one group and written when its last request completes,
    so a slow request holds up its window. About 16 requests per worker (or
    per batch slot) keep that wait small against the window's own run time,
    while records still stream out window by window.
    """
    requests = 16 * max(options.concurrency if options.kind == "openai" else model_options.batch_size, 1)
    return max(1, requests // max(requests_per_record, 1))


def open_completer(options: BackendOptions, model_options: ModelOptions, log: Callable[[str], None]) -> Completer:
    """Create the backend and cache that ``options`` describe (loads a local model)."""
    backend: Backend
    if options.kind == "openai":
        from pfx.backends.openai import OpenAIBackend, read_api_key

        assert options.api_base is not None and model_options.model is not None
        backend = OpenAIBackend(
            api_base=options.api_base,
            model=model_options.model,
            api_key=read_api_key(options.api_key_env),
            concurrency=options.concurrency,
            timeout=options.timeout,
            max_retries=options.max_retries,
            backoff=options.backoff,
            log=log,
        )
    else:
        from pfx.backends.local import LocalBackend

        backend = LocalBackend(model_options)
    cache = None if options.no_cache else RequestCache(options.cache_dir or default_cache_dir())
    return Completer(backend, cache)


def stderr_logger(command: str, quiet: bool, limit: int = 20) -> Callable[[str], None]:
    """Return a function that prints ``pfx COMMAND: message`` on stderr, at most ``limit`` times.

    Backends log every retry; after ``limit`` lines the rest are only counted in the summary.
    """
    printed = 0

    def log(message: str) -> None:
        nonlocal printed
        if quiet:
            return
        printed += 1
        if printed <= limit:
            print(f"pfx {command}: {message}", file=sys.stderr)
        elif printed == limit + 1:
            print(f"pfx {command}: further messages of this kind are only counted in the summary", file=sys.stderr)

    return log
