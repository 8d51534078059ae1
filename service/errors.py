"""Every domain error tierwise raises, in one place.

The HTTP edge (``tierwise.service.api.errors``) and the CLI (``tierwise.service.cli``) map these to a status
code or an exit code exactly once; nothing below the edge knows about HTTP.
"""

from __future__ import annotations


class TierwiseError(Exception):
    """Base class: carries a stable machine-readable code and the offending field, if any."""

    code = "error"

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidInput(TierwiseError):
    code = "invalid_input"


class ConfigError(TierwiseError):
    code = "config_error"


class PolicyInvalid(TierwiseError):
    code = "policy_invalid"


class PolicyNotFound(TierwiseError):
    code = "policy_not_found"


class NoEligibleTier(TierwiseError):
    code = "no_eligible_tier"


class DecisionNotFound(TierwiseError):
    code = "decision_not_found"


class OutcomeConflict(TierwiseError):
    code = "conflict"


class QueueItemNotFound(TierwiseError):
    code = "queue_item_not_found"


class ArtifactMissing(TierwiseError):
    code = "artifact_missing"


class TelemetryTooThin(TierwiseError):
    code = "telemetry_too_thin"


class RegistryUnavailable(TierwiseError):
    code = "registry_unavailable"


class TelemetryUnavailable(TierwiseError):
    """The journal cannot take a write (disk full, file-size limit, read-only): the client retries."""

    code = "telemetry_unavailable"


class RetuneFailed(TierwiseError):
    code = "retune_failed"


class RetuneBusy(TierwiseError):
    """Another retune holds the home's retune lock (``another retune is running (pid N since T)``)."""

    code = "retune_busy"


class Unauthorized(TierwiseError):
    """No API key, a malformed ``Authorization`` header, or a key that is unknown or revoked."""

    code = "unauthorized"


class Forbidden(TierwiseError):
    """A valid API key without the scope the endpoint needs."""

    code = "forbidden"


class KeyNotFound(TierwiseError):
    code = "key_not_found"



class UpstreamFailed(TierwiseError):
    """A model call through the proxy failed: the upstream errored, refused, or its output broke
    the requested schema. ``kind`` is the attempt's failure kind; the proxy escalates on it, and
    only when the chain is spent does the error reach the client (502)."""

    code = "upstream_failed"

    def __init__(self, message: str, kind: str = "error", field: str | None = None) -> None:
        super().__init__(message, field)
        self.kind = kind


class UpstreamTimeout(UpstreamFailed):
    """The upstream did not answer within ``TIERWISE_UPSTREAM_TIMEOUT_S`` (504)."""

    code = "upstream_timeout"

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message, "timeout", field)
