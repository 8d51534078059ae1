"""Calls to the OpenAI-compatible upstream of a tier, with one pooled HTTP client per app.

Each tier's upstream is ``TIERWISE_UPSTREAMS[tier]`` or the default ``TIERWISE_UPSTREAM_BASE_URL``;
its key is read from the environment variable the settings *name*, at call time, into the
request's header only: it is never stored on an object, logged, or journalled.

Every failure of a call becomes ``UpstreamFailed`` (or ``UpstreamTimeout``) here, in one place,
with the attempt's failure kind: the proxy escalates on it, and the HTTP edge maps what is left.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from tierwise.service.errors import ConfigError, UpstreamFailed, UpstreamTimeout
from tierwise.service.settings import ENV_PREFIX, Settings, UpstreamSpec

# Upstream statuses that mean "this model refused", not "this server broke".
REFUSAL_FINISH = "content_filter"


class Upstreams:
    def __init__(self, settings: Settings) -> None:
        self.default = (UpstreamSpec(base_url=settings.upstream_base_url, api_key_env=settings.upstream_api_key_env)
                        if settings.upstream_base_url else None)
        self.by_tier = dict(settings.upstreams)
        timeout = httpx.Timeout(settings.upstream_timeout_s, connect=settings.upstream_connect_timeout_s)
        self.client = httpx.AsyncClient(timeout=timeout, limits=httpx.Limits(max_connections=256,
                                                                             max_keepalive_connections=64))

    async def close(self) -> None:
        await self.client.aclose()

    def spec(self, tier: str | None) -> UpstreamSpec:
        spec = self.by_tier.get(tier) if tier is not None else None
        spec = spec or self.default
        if spec is None:
            raise ConfigError(f"no upstream for tier {tier or '(pass-through)'}: set {ENV_PREFIX}UPSTREAM_BASE_URL "
                              f"or {ENV_PREFIX}UPSTREAMS", field=f"{ENV_PREFIX}UPSTREAM_BASE_URL")
        return spec

    def _request(self, tier: str | None, body: dict[str, Any]) -> httpx.Request:
        spec = self.spec(tier)
        headers = {"content-type": "application/json"}
        if spec.api_key_env:
            key = os.environ.get(spec.api_key_env)
            if not key:  # names the variable, never a value
                raise ConfigError(f"the upstream key variable {spec.api_key_env} is not set", field=spec.api_key_env)
            headers["authorization"] = f"Bearer {key}"
        url = spec.base_url.rstrip("/") + "/chat/completions"
        return self.client.build_request("POST", url, json=body, headers=headers)

    async def complete(self, tier: str | None, body: dict[str, Any]) -> dict[str, Any]:
        """One non-streaming call; the parsed completion, or ``UpstreamFailed``."""
        try:
            response = await self.client.send(self._request(tier, body))
        except httpx.TimeoutException as exc:
            raise UpstreamTimeout(f"upstream of {tier or 'pass-through'} timed out ({type(exc).__name__})") from exc
        except httpx.HTTPError as exc:
            raise UpstreamFailed(f"upstream of {tier or 'pass-through'} unreachable ({type(exc).__name__})") from exc
        _check_status(response, tier)
        try:
            data = response.json()
        except ValueError as exc:
            raise UpstreamFailed(f"upstream of {tier or 'pass-through'} sent a body that is not JSON") from exc
        choices = data.get("choices") if isinstance(data, dict) else None
        if not isinstance(data, dict) or not isinstance(choices, list) or \
                not all(isinstance(c, dict) for c in choices):
            raise UpstreamFailed(f"upstream of {tier or 'pass-through'} sent no list of choices")
        return data

    @asynccontextmanager
    async def stream(self, tier: str | None, body: dict[str, Any]) -> AsyncIterator[httpx.Response]:
        """An open streaming response whose status was checked; closing it cancels the upstream call."""
        try:
            response = await self.client.send(self._request(tier, body), stream=True)
        except httpx.TimeoutException as exc:
            raise UpstreamTimeout(f"upstream of {tier or 'pass-through'} timed out ({type(exc).__name__})") from exc
        except httpx.HTTPError as exc:
            raise UpstreamFailed(f"upstream of {tier or 'pass-through'} unreachable ({type(exc).__name__})") from exc
        try:
            if response.status_code >= 400:
                await response.aread()
            _check_status(response, tier)
            yield response
        finally:
            await response.aclose()


async def lines(response: httpx.Response, tier: str | None) -> AsyncIterator[str]:
    """The non-empty lines of a stream; a broken or stalled stream is an ``UpstreamFailed``."""
    try:
        async for line in response.aiter_lines():
            if line:
                yield line
    except httpx.TimeoutException as exc:
        raise UpstreamTimeout(f"upstream of {tier or 'pass-through'} stalled mid-stream") from exc
    except httpx.HTTPError as exc:
        raise UpstreamFailed(f"upstream of {tier or 'pass-through'} broke the stream ({type(exc).__name__})") from exc


def _check_status(response: httpx.Response, tier: str | None) -> None:
    if response.status_code < 400:
        return
    where = f"upstream of {tier or 'pass-through'}"
    if response.status_code in (408, 504):
        raise UpstreamTimeout(f"{where} answered HTTP {response.status_code}")
    raise UpstreamFailed(f"{where} answered HTTP {response.status_code}: {_error_message(response)}")


def _error_message(response: httpx.Response) -> str:
    """The upstream's own error message, bounded: it is the client's best clue. An upstream that
    echoes the key it was sent (some do, on a 401) gets it cut out: the message reaches the
    client and the log."""
    try:
        err = response.json().get("error")
        message = err.get("message") if isinstance(err, dict) else err
    except (ValueError, AttributeError):
        message = None
    text = str(message or response.reason_phrase)
    _, _, key = response.request.headers.get("authorization", "").partition(" ")
    if key:
        text = text.replace(key, "[key]")
    return text[:300]


def refusal(choice: dict[str, Any]) -> str | None:
    """Why a choice is a refusal (the model's ``refusal`` text or a content-filter stop), else None."""
    message = choice.get("message") or choice.get("delta") or {}
    if isinstance(message, dict) and message.get("refusal"):
        return str(message["refusal"])[:300]
    if choice.get("finish_reason") == REFUSAL_FINISH:
        return "stopped by the upstream's content filter"
    return None
