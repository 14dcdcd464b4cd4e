"""Where configuration comes from, and which source wins.

Precedence, lowest first (each later source overrides keys of the earlier ones):

1. the model's defaults;
2. a YAML file: the ``config=`` path given in code, else ``$TELEMETRY_CONFIG``;
3. a mapping or keyword arguments given in code;
4. the standard OpenTelemetry variables (``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``,
   ``OTEL_TRACES_SAMPLER``/``_ARG``, ``OTEL_EXPORTER_OTLP_ENDPOINT``/``_PROTOCOL``,
   ``OTEL_PROPAGATORS``, ``OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST``/
   ``_RESPONSE``);
5. ``TELEMETRY_<KEY>`` overrides, ``__`` separating sections: ``TELEMETRY_LOGGING__LEVEL=debug``.

The environment wins over code so that one image runs unchanged in every deployment.

A bad file or code value raises :class:`ConfigError` naming its key path. A bad variable never
does: the environment belongs to the deployment, and one wrong value there must not stop the
app. A variable (``OTEL_TRACES_SAMPLER`` with its ``_ARG``) that adds a problem is ignored with
one warning naming it, the problem and the value used instead (the file's, the code's or the
default); the others still apply.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import typing
import urllib.parse
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from .. import semconv
from .._otel_env import warn_variable
from ..errors import ConfigError
from . import _model as m
from ._model._http import _header_names
from ._parse import _fields, normalise, parse_settings

__all__ = ["load_settings", "read_yaml", "settings_to_mapping"]

_RESERVED_ENV = {semconv.ENV_CONFIG, semconv.ENV_DISABLED_INSTRUMENTATIONS}


class EnvVariable(NamedTuple):
    """What one variable (or a pair read together) adds to the configuration."""

    names: tuple[str, ...]
    layer: dict[str, Any]
    raw: str


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
    variables = [*otel_env_variables(env), *telemetry_env_variables(env)]
    if source is not None and (any(layers[1:]) or variables):
        source = f"{source} (with overrides from code or the environment)"
    base: dict[str, Any] = {}
    for layer in layers:
        _deep_merge(base, normalise(m.TelemetrySettings, layer))
    try:
        return parse_settings(_with_variables(base, variables), source=source)
    except ConfigError:
        if not variables:
            raise
    return parse_settings(_without_bad_variables(base, variables), source=source)


def _with_variables(base: dict[str, Any], variables: Sequence[EnvVariable]) -> dict[str, Any]:
    """``base`` overridden by the ``OTEL_*`` variables, then by the ``TELEMETRY_*`` ones (the
    variables of one kind add up into one layer, so ``__TYPE`` and ``__RATE`` go together)."""
    merged = copy.deepcopy(base)
    for prefix in ("OTEL_", semconv.ENV_PREFIX):
        layer: dict[str, Any] = {}
        for variable in variables:
            if variable.names[0].startswith(prefix):
                _add_up(layer, variable.layer)
        _deep_merge(merged, normalise(m.TelemetrySettings, layer))
    return merged


def _add_up(into: dict[str, Any], layer: Mapping[str, Any]) -> None:
    for key, value in layer.items():
        current = into.get(key)
        if isinstance(value, Mapping) and isinstance(current, dict):
            _add_up(current, value)
        else:
            into[key] = _plain(value) if isinstance(value, Mapping) else value


def _problems(data: Mapping[str, Any]) -> frozenset[str]:
    try:
        parse_settings(data)
    except ConfigError as exc:
        return frozenset(exc.problems)
    return frozenset()


def _without_bad_variables(
    base: dict[str, Any], variables: Sequence[EnvVariable]
) -> dict[str, Any]:
    """``base`` with the variables, less the ones that add problems (each warned about).

    While the variables add a problem, the one whose removal leaves the fewest problems is
    left out (on a tie, the last one read); so ``__TYPE=ratio`` and ``__RATE=0.5`` stay
    together, and a variable that repairs a bad file value is kept.
    """
    known = _problems(base)
    kept = list(variables)
    problems = _problems(_with_variables(base, kept))
    while kept and not problems <= known:
        options = []
        for index, variable in enumerate(kept):
            rest = [v for v in kept if v is not variable]
            options.append((len(_problems(_with_variables(base, rest))), -index, rest, variable))
        _, _, rest, variable = min(options, key=lambda o: (o[0], o[1]))
        left = _problems(_with_variables(base, rest))
        added = sorted(problems - left) or sorted(problems - known)
        kept, problems = rest, left
        current = _with_variables(base, kept)
        using = ", ".join(f"{p}={_shown(current, p)}" for p in _leaf_paths(variable.layer))
        warn_variable(
            variable.names[0],
            variable.raw,
            f"ignoring {'/'.join(variable.names)}: {'; '.join(added)}; using {using}",
        )
    return _with_variables(base, kept)


def _leaf_paths(layer: Mapping[str, Any], prefix: str = "") -> list[str]:
    paths: list[str] = []
    for key, value in layer.items():
        path = f"{prefix}.{key}" if prefix else key
        if isinstance(value, Mapping) and value and key != "resource_attributes":
            paths += _leaf_paths(value, path)
        else:
            paths.append(path)
    return paths


def _shown(data: Mapping[str, Any], path: str) -> str:
    """The value at ``path`` once parsed (the default when unset), never a secret's."""
    node: Any = data
    cls: Any = m.TelemetrySettings
    try:
        settings: Any = parse_settings(data)
    except ConfigError:
        settings = None
    for key in path.split("."):
        fields = _fields(cls) if isinstance(cls, type) and dataclasses.is_dataclass(cls) else {}
        field_info = fields.get(key)
        if field_info is None:
            return "(unknown key, ignored)"
        if field_info[1].metadata.get("secret"):
            return "'***'"
        node = node.get(key) if isinstance(node, Mapping) else None
        settings = getattr(settings, field_info[1].name, None) if settings is not None else None
        cls = next(
            (a for a in (field_info[0], *typing.get_args(field_info[0]))
             if dataclasses.is_dataclass(a)),
            None,
        )  # fmt: skip
    value = settings if settings is not None else node
    if dataclasses.is_dataclass(value):
        value = {k: v for k, v in settings_to_mapping(value).items() if v is not False}
    if isinstance(value, tuple):
        value = list(value)
    return "the default" if value is None else repr(value)


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
    for variable in telemetry_env_variables(env):
        _deep_merge(layer, variable.layer)
    return layer


def telemetry_env_variables(env: Mapping[str, str]) -> list[EnvVariable]:
    """One :class:`EnvVariable` per ``TELEMETRY_*`` configuration variable."""
    found: list[EnvVariable] = []
    for name, raw in env.items():
        if not name.startswith(semconv.ENV_PREFIX) or name in _RESERVED_ENV:
            continue
        keys = [k.lower() for k in name[len(semconv.ENV_PREFIX) :].split("__")]
        if not all(keys):
            continue
        layer: dict[str, Any] = {}
        node = layer
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = _env_value(raw)
        found.append(EnvVariable((name,), layer, raw))
    return found


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
    for variable in otel_env_variables(env):
        _deep_merge(layer, variable.layer)
    return layer


def otel_env_variables(env: Mapping[str, str]) -> list[EnvVariable]:
    """The standard ``OTEL_*`` variables, each translated to our keys on its own."""
    found: list[EnvVariable] = []

    def add(names: tuple[str, ...], layer: dict[str, Any]) -> None:
        found.append(EnvVariable(names, layer, env.get(names[0], "")))

    resource = _resource_attributes(env.get("OTEL_RESOURCE_ATTRIBUTES", ""))
    if resource:
        layer: dict[str, Any] = {"tracing": {"resource_attributes": resource}}
        if "service.name" in resource:
            layer["service"] = resource["service.name"]
        env_name = resource.get("deployment.environment.name") or resource.get(
            "deployment.environment"
        )
        if env_name:
            layer["environment"] = env_name
        add(("OTEL_RESOURCE_ATTRIBUTES",), layer)
    if env.get("OTEL_SERVICE_NAME", "").strip():
        add(("OTEL_SERVICE_NAME",), {"service": env["OTEL_SERVICE_NAME"].strip()})
    sampler = env.get("OTEL_TRACES_SAMPLER", "").strip().lower()
    if sampler:
        names = ("OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG")
        add(names, {"tracing": {"sampling": _otel_sampler(sampler, env.get(names[1]))}})
    propagation = _otel_propagators(env.get("OTEL_PROPAGATORS", ""))
    if propagation is not None:
        add(("OTEL_PROPAGATORS",), {"tracing": {"propagation": propagation}})
    for direction in ("request", "response"):
        name = f"OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_{direction.upper()}"
        headers = _capture_headers(name, env.get(name, ""))
        if headers:
            add((name,), {"http": {"capture_headers": {direction: headers}}})
    for suffix, check in (("ENDPOINT", _endpoint_problem), ("PROTOCOL", None)):
        otlp_name = next(
            (n for n in (f"OTEL_EXPORTER_OTLP_TRACES_{suffix}", f"OTEL_EXPORTER_OTLP_{suffix}")
             if env.get(n, "").strip()),
            None,
        )  # fmt: skip
        if otlp_name is None:
            continue
        value = env[otlp_name].strip()
        problem = check(value) if check is not None else None
        if problem is not None:
            warn_variable(otlp_name, value, f"ignoring {otlp_name}={value!r}: {problem}")
            continue
        add((otlp_name,), {"tracing": {"exporters": {"otlp": {suffix.lower(): value}}}})
    return found


# The OTEL_PROPAGATORS names telemetry-web reads, and its own names for them.
_OTEL_PROPAGATORS = {
    "tracecontext": "w3c",
    "baggage": "baggage",
    "b3": "b3",
    "b3multi": "b3multi",
}


def _capture_headers(name: str, value: str) -> list[str]:
    """A comma-separated list of header names; names that cannot be headers are left out."""
    names = [n.strip() for n in value.split(",") if n.strip()]
    bad = [n for n in names if not _header_names((n,))]
    if bad:
        warn_variable(
            name, value, f"ignoring {', '.join(map(repr, bad))} in {name}: not header names"
        )
    return [n for n in names if n not in bad]


def _otel_propagators(value: str) -> list[str] | None:
    """``OTEL_PROPAGATORS`` as our propagation names; unknown names are left out (warned)."""
    names = [n.strip().lower() for n in value.split(",") if n.strip()]
    if not names:
        return None
    if "none" in names:
        return []
    known = [_OTEL_PROPAGATORS[n] for n in names if n in _OTEL_PROPAGATORS]
    unknown = [n for n in names if n not in _OTEL_PROPAGATORS]
    if unknown:
        using = ",".join(n for n in names if n in _OTEL_PROPAGATORS) or "the configured ones"
        warn_variable(
            "OTEL_PROPAGATORS",
            value,
            f"ignoring {', '.join(map(repr, unknown))} in OTEL_PROPAGATORS={value!r}: "
            f"telemetry-web reads {', '.join(_OTEL_PROPAGATORS)} (or none); using {using}",
        )
    return list(dict.fromkeys(known)) or None


def _endpoint_problem(value: str) -> str | None:
    """Why ``value`` cannot be a collector address (``http[s]://host[:port][/path]``)."""
    try:
        url = urllib.parse.urlsplit(value)
        url.port  # noqa: B018  (raises on a port that is not a number in range)
    except ValueError as exc:
        return f"not a URL ({exc})"
    if url.scheme not in ("http", "https") or not url.hostname:
        return "expected a URL such as 'http://collector:4318'"
    return None


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


def _resource_attributes(text: str) -> dict[str, str]:
    """``key=value,key=value`` with percent-encoded values, as the specification writes them;
    entries that are not ``key=value`` are left out with one warning."""
    pairs: dict[str, str] = {}
    bad: list[str] = []
    for part in text.split(","):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            bad.append(part.strip())
            continue
        pairs[urllib.parse.unquote(key.strip())] = urllib.parse.unquote(value.strip())
    if bad:
        warn_variable(
            "OTEL_RESOURCE_ATTRIBUTES",
            text,
            f"ignoring {', '.join(map(repr, bad))} in OTEL_RESOURCE_ATTRIBUTES: expected "
            f"key=value pairs separated by commas; using {pairs or 'no attributes from it'}",
        )
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
        value = getattr(settings, fld.name)
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
