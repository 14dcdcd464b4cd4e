"""Where configuration comes from, and which source wins.

Precedence, lowest first (each later source overrides keys of the earlier ones):

1. the model's defaults;
2. a YAML file: the ``config=`` path given in code, else ``$TELEMETRY_CONFIG``;
3. a mapping or keyword arguments given in code;
4. the standard OpenTelemetry variables (``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``,
   ``OTEL_TRACES_SAMPLER``/``_ARG``, ``OTEL_EXPORTER_OTLP_ENDPOINT``/``_PROTOCOL``,
   ``OTEL_PROPAGATORS``);
5. ``TELEMETRY_<KEY>`` overrides, ``__`` separating sections: ``TELEMETRY_LOGGING__LEVEL=debug``.

The environment wins over code so that one image runs unchanged in every deployment.
"""

from __future__ import annotations

import dataclasses
import os
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from .. import semconv
from ..errors import ConfigError
from . import _model as m
from ._parse import _fields, normalise, parse_settings

__all__ = ["load_settings", "read_yaml", "settings_to_mapping"]

_RESERVED_ENV = {semconv.ENV_CONFIG, semconv.ENV_DISABLED_INSTRUMENTATIONS}


def load_settings(
    config: str | os.PathLike[str] | Mapping[str, Any] | m.TelemetrySettings | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    use_env: bool = True,
    **overrides: Any,
) -> m.TelemetrySettings:
    """Merge every source into one validated :class:`TelemetrySettings`.

    Args:
        config: a YAML file path, a mapping shaped like the file, or ready settings.
        environ: the environment to read (``os.environ`` by default).
        use_env: ``False`` ignores the environment entirely (tests, embedded use).
        overrides: top-level keys given in code (``service="api"``), applied over ``config``.

    Raises:
        ConfigError: naming each bad key path, value and expectation.
    """
    env = dict(os.environ if environ is None else environ) if use_env else {}
    layers: list[dict[str, Any]] = []
    source: str | None = None
    file_path = config if isinstance(config, str | os.PathLike) else env.get(semconv.ENV_CONFIG)
    if file_path:
        source = os.fspath(file_path)
        layers.append(read_yaml(source))
    if isinstance(config, m.TelemetrySettings):
        layers.append(settings_to_mapping(config))
    elif isinstance(config, Mapping):
        layers.append(_plain(config))
    elif config is not None and not isinstance(config, str | os.PathLike):
        raise ConfigError(
            [f"<root>: expected a YAML path, a mapping or TelemetrySettings, got {config!r}"]
        )
    layers.append({k: v for k, v in overrides.items() if v is not None})
    layers.append(otel_env_layer(env))
    layers.append(telemetry_env_layer(env))
    merged: dict[str, Any] = {}
    for layer in layers:
        _deep_merge(merged, normalise(m.TelemetrySettings, layer))
    if source is not None and any(layers[1:]):
        source = f"{source} (with overrides from code or the environment)"
    return parse_settings(merged, source=source)


def read_yaml(path: str) -> dict[str, Any]:
    """The mapping in a YAML configuration file (a top-level ``telemetry:`` key is unwrapped)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"cannot read the file: {exc.strerror or exc}"], source=path) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([f"{where}not valid YAML ({problem})"], source=path) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError([f"<root>: expected a mapping, got {type(data).__name__}"], source=path)
    if set(data) == {"telemetry"} and isinstance(data["telemetry"], dict):
        data = data["telemetry"]
    return data


def telemetry_env_layer(env: Mapping[str, str]) -> dict[str, Any]:
    """``TELEMETRY_LOGGING__LEVEL=debug`` → ``{"logging": {"level": "debug"}}``."""
    layer: dict[str, Any] = {}
    for name, raw in env.items():
        if not name.startswith(semconv.ENV_PREFIX) or name in _RESERVED_ENV:
            continue
        keys = [k.lower() for k in name[len(semconv.ENV_PREFIX) :].split("__")]
        if not all(keys):
            continue
        node = layer
        for key in keys[:-1]:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                break
        else:
            node[keys[-1]] = _env_value(raw)
    return layer


def _env_value(raw: str) -> Any:
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw
    # Only scalars are read as YAML; `a,b` lists and `k=v` pairs are split by the parser.
    return value if isinstance(value, str | int | float | bool) or value is None else raw


_OTEL_SAMPLERS: dict[str, dict[str, Any]] = {
    "always_on": {"type": "always_on"},
    "always_off": {"type": "always_off"},
    "traceidratio": {"type": "ratio"},
    "parentbased_always_on": {"type": "parent_based", "root": {"type": "always_on"}},
    "parentbased_always_off": {"type": "parent_based", "root": {"type": "always_off"}},
    "parentbased_traceidratio": {"type": "parent_based", "root": {"type": "ratio"}},
}
_OTEL_PROPAGATORS = {"tracecontext": "w3c", "baggage": "baggage", "b3": "b3", "b3multi": "b3multi"}


def otel_env_layer(env: Mapping[str, str]) -> dict[str, Any]:
    """The standard ``OTEL_*`` variables, translated to our keys."""
    layer: dict[str, Any] = {}
    tracing: dict[str, Any] = {}
    resource = _pairs(env.get("OTEL_RESOURCE_ATTRIBUTES", ""))
    if resource:
        tracing["resource_attributes"] = resource
        if "service.name" in resource:
            layer["service"] = resource["service.name"]
        env_name = resource.get("deployment.environment.name") or resource.get(
            "deployment.environment"
        )
        if env_name:
            layer["environment"] = env_name
    if env.get("OTEL_SERVICE_NAME"):
        layer["service"] = env["OTEL_SERVICE_NAME"]
    sampler = env.get("OTEL_TRACES_SAMPLER", "").strip().lower()
    if sampler:
        tracing["sampling"] = _otel_sampler(sampler, env.get("OTEL_TRACES_SAMPLER_ARG"))
    propagators = env.get("OTEL_PROPAGATORS", "").strip()
    if propagators == "none":
        tracing["propagation"] = []
    elif propagators:
        tracing["propagation"] = [
            _OTEL_PROPAGATORS.get(p.strip(), p.strip()) for p in propagators.split(",") if p.strip()
        ]
    otlp: dict[str, Any] = {}
    endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    if endpoint:
        otlp["endpoint"] = endpoint
    protocol = env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get(
        "OTEL_EXPORTER_OTLP_PROTOCOL"
    )
    if protocol:
        otlp["protocol"] = protocol
    if otlp:
        tracing["exporters"] = {"otlp": otlp}
    if tracing:
        layer["tracing"] = tracing
    return layer


def _otel_sampler(name: str, arg: str | None) -> Any:
    if name not in _OTEL_SAMPLERS:
        return name  # the parser names the accepted values
    sampler = {**_OTEL_SAMPLERS[name]}
    ratio = sampler if sampler["type"] == "ratio" else sampler.get("root", {})
    if ratio.get("type") == "ratio":
        ratio = {**ratio, "rate": _number(arg) if arg else 1.0}
        if sampler["type"] == "ratio":
            sampler = ratio
        else:
            sampler["root"] = ratio
    return sampler


def _number(text: str) -> Any:
    try:
        return float(text)
    except ValueError:
        return text


def _pairs(text: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        if sep and key.strip():
            pairs[key.strip()] = value.strip()
    return pairs


def _deep_merge(into: dict[str, Any], layer: Mapping[str, Any]) -> None:
    for key, value in layer.items():
        current = into.get(key)
        if (
            isinstance(current, dict)
            and isinstance(value, Mapping)
            and value.get("type", current.get("type")) == current.get("type")
        ):  # a section of another type replaces the whole section, it does not merge into it
            _deep_merge(current, value)
        else:
            into[key] = _plain(value) if isinstance(value, Mapping) else value


def _plain(mapping: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _plain(v) if isinstance(v, Mapping) else v for k, v in mapping.items()}


def settings_to_mapping(settings: Any) -> dict[str, Any]:
    """The mapping that parses back into ``settings`` (a switched-off section becomes ``False``)."""
    result: dict[str, Any] = {}
    kind = getattr(settings, "type", None)
    cls: Any = type(settings)
    for name, (tp, fld) in _fields(cls).items():
        value = getattr(settings, name)
        kinds = fld.metadata.get("kinds")
        if kinds and kind not in kinds:
            continue  # a key of another type of this tagged section
        if dataclasses.is_dataclass(value):
            result[name] = settings_to_mapping(value)
        elif isinstance(value, tuple):
            result[name] = [
                settings_to_mapping(v) if dataclasses.is_dataclass(v) else v for v in value
            ]
        elif value is None and any(dataclasses.is_dataclass(a) for a in typing.get_args(tp)):
            result[name] = False  # None would read back as "on, with the defaults"
        elif value is not None or fld.default is not None:
            result[name] = value
    return result
