"""Every exception telemetry-web raises on purpose.

TelemetryError
 ├── ConfigError              invalid configuration (names key path, value, expectation)
 ├── MetricRegistrationError  a metric name registered twice with different definitions
 └── MissingExtraError        (also an ImportError) an adapter's framework is not installed
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["ConfigError", "MetricRegistrationError", "MissingExtraError", "TelemetryError"]


class TelemetryError(Exception):
    """Base class of the errors telemetry-web raises on purpose."""


class ConfigError(TelemetryError, ValueError):
    """Configuration that cannot be used.

    ``problems`` holds one line per problem, each starting with the key path
    (``tracing.sampling.rate: expected a positive number, got 'fast'``).
    """

    def __init__(self, problems: Sequence[str], source: str | None = None) -> None:
        self.problems = list(problems)
        self.source = source
        where = f" in {source}" if source else ""
        if len(self.problems) == 1:
            message = f"invalid telemetry configuration{where}: {self.problems[0]}"
        else:
            lines = "\n".join(f"  - {p}" for p in self.problems)
            message = f"invalid telemetry configuration{where}:\n{lines}"
        super().__init__(message)


class MetricRegistrationError(TelemetryError, ValueError):
    """A metric name is registered again with another type, label keys or buckets."""


class MissingExtraError(TelemetryError, ImportError):
    """A feature needs a distribution that is not installed."""

    def __init__(self, feature: str, distribution: str, extra: str) -> None:
        super().__init__(
            f"{feature} needs '{distribution}', which is not installed: "
            f"pip install 'telemetry-web[{extra}]'",
            name=distribution,
        )
        self.extra = extra
