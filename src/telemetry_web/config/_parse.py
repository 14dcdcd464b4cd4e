"""Turn plain data (from YAML, code or the environment) into the typed model, or explain why not.

Every problem is collected, not just the first, and each names its key path, the value and what
was expected: ``tracing.sampling.rate: expected a number from 0 to 1, got 'fast'``.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Callable, Mapping
from functools import cache
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

from ..errors import ConfigError
from . import _model as m
from ._units import parse_duration, parse_size

__all__ = ["parse_section", "parse_settings"]

T = TypeVar("T")


class _Invalid(Exception):
    """Raised inside conversion; the message is what was expected."""


def parse_settings(data: Mapping[str, Any], *, source: str | None = None) -> m.TelemetrySettings:
    """Build :class:`TelemetrySettings` from a mapping shaped like the configuration file.

    Raises:
        ConfigError: listing every problem found, each with its key path.
    """
    return parse_section(m.TelemetrySettings, data, source=source)


def parse_section(cls: type[T], data: object, *, path: str = "", source: str | None = None) -> T:
    """Build one section (any model dataclass) from plain data; see :func:`parse_settings`."""
    problems: list[str] = []
    result = _convert(cls, data, path, {}, problems)
    if problems:
        raise ConfigError(problems, source=source)
    return typing.cast(T, result)


# --- conversion ------------------------------------------------------------------------------


def _show(value: object, meta: Mapping[str, Any]) -> str:
    if meta.get("secret"):
        return "'***'"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _convert(
    tp: Any, value: object, path: str, meta: Mapping[str, Any], problems: list[str]
) -> Any:
    try:
        converted = _convert_or_raise(tp, value, path, meta, problems)
    except _Invalid as exc:
        # A field's own expectation ("a positive number") says more than its type ("a number").
        expected = meta.get("expect") if _is_scalar(tp) else None
        problems.append(f"{path or '<root>'}: expected {expected or exc}, got {_show(value, meta)}")
        return None
    check: Callable[[Any], bool] | None = meta.get("check")
    if check is not None and converted is not None and not check(converted):
        problems.append(f"{path}: expected {meta.get('expect')}, got {_show(value, meta)}")
    return converted


def _is_scalar(tp: Any) -> bool:
    members = get_args(tp) if get_origin(tp) in (Union, types.UnionType) else (tp,)
    return any(t in (int, float) for t in members)


def _convert_or_raise(
    tp: Any, value: object, path: str, meta: Mapping[str, Any], problems: list[str]
) -> Any:
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        members = [a for a in get_args(tp) if a is not type(None)]
        if value is None:
            if dataclasses.is_dataclass(members[0]):
                # `console:` with nothing under it means "on, with the defaults".
                return _convert_or_raise(members[0], {}, path, meta, problems)
            return None
        if value is False and dataclasses.is_dataclass(members[0]):
            return None  # `statsd: false` switches a section off
        if value is True and dataclasses.is_dataclass(members[0]):
            return _convert_or_raise(members[0], {}, path, meta, problems)
        return _convert_or_raise(members[0], value, path, meta, problems)
    if dataclasses.is_dataclass(tp):
        return _convert_dataclass(typing.cast(type, tp), value, path, problems)
    if origin is Literal:
        return _convert_choice(get_args(tp), value)
    if origin is tuple:
        return _convert_tuple(get_args(tp)[0], value, path, meta, problems)
    if origin is dict:
        return _convert_dict(get_args(tp)[1], value, path, meta, problems)
    unit = meta.get("unit")
    if unit == "duration":
        try:
            return parse_duration(value)
        except ValueError:
            raise _Invalid("a duration such as '500ms', '10s', '5m', '15d' or seconds") from None
    if unit == "size":
        try:
            return parse_size(value)
        except ValueError:
            raise _Invalid("a size such as '512KB', '100MB', '1GiB' or bytes") from None
    return _convert_scalar(tp, value)


def _convert_scalar(tp: Any, value: object) -> object:
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in _BOOLEANS:
            return _BOOLEANS[value.lower()]
        raise _Invalid("true or false")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise _Invalid("a whole number")
    if tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise _Invalid("a number")
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)  # `TELEMETRY_SERVICE=123` arrives as a number
        raise _Invalid("a string")
    if tp is Any:
        return value
    raise TypeError(f"unsupported configuration type {tp!r}")  # a bug in the model


_BOOLEANS = {
    "true": True,
    "yes": True,
    "on": True,
    "1": True,
    "false": False,
    "no": False,
    "off": False,
    "0": False,
}


def _convert_choice(choices: tuple[str, ...], value: object) -> str:
    if isinstance(value, bool) and "true" in choices:  # `enabled: true` next to "auto"
        value = "true" if value else "false"
    if isinstance(value, str):
        lowered = value.lower()
        if lowered in choices:
            return lowered
    listed = ", ".join(repr(c) for c in choices)
    hint = _did_you_mean(value, choices) if isinstance(value, str) else ""
    raise _Invalid(f"one of {listed}{hint}")


def _convert_tuple(
    item_tp: Any, value: object, path: str, meta: Mapping[str, Any], problems: list[str]
) -> tuple[Any, ...]:
    if isinstance(value, str) and not dataclasses.is_dataclass(item_tp):
        # `a,b` or `0.1,0.5,1` from the environment: items read as numbers where they are ones
        value = [_number_or_text(part.strip()) for part in value.split(",") if part.strip()]
    if not isinstance(value, list | tuple):
        raise _Invalid("a list")
    item_meta = {k: v for k, v in meta.items() if k in ("unit", "secret")}
    return tuple(
        _convert(item_tp, item, f"{path}[{i}]", item_meta, problems) for i, item in enumerate(value)
    )


def _convert_dict(
    value_tp: Any, value: object, path: str, meta: Mapping[str, Any], problems: list[str]
) -> dict[str, Any]:
    if isinstance(value, str):
        value = _parse_pairs(value)  # `k=v,k2=v2`, as OTEL_RESOURCE_ATTRIBUTES writes it
    if not isinstance(value, Mapping):
        raise _Invalid("a mapping of names to values")
    result: dict[str, Any] = {}
    for key, item in value.items():
        if not isinstance(key, str):
            problems.append(f"{path}: expected string keys, got {key!r}")
            continue
        item_meta = {"secret": True} if meta.get("secret") else {}
        result[key] = _convert(value_tp, item, f"{path}.{key}", item_meta, problems)
    return result


def _number_or_text(text: str) -> int | float | str:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _parse_pairs(text: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for part in text.split(","):
        if not part.strip():
            continue
        key, sep, val = part.partition("=")
        if not sep:
            raise _Invalid("'key=value' pairs separated by commas")
        pairs[key.strip()] = val.strip()
    return pairs


def _did_you_mean(word: str, options: typing.Iterable[str]) -> str:
    close = difflib.get_close_matches(word.lower(), list(options), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


# --- sections --------------------------------------------------------------------------------


@cache
def _fields(cls: type) -> dict[str, tuple[Any, dataclasses.Field[Any]]]:
    """Fields by configuration key: the field's name, or its ``key`` metadata (``for_`` is
    ``for``)."""
    hints = typing.get_type_hints(cls)
    return {f.metadata.get("key", f.name): (hints[f.name], f) for f in dataclasses.fields(cls)}


def _tag_choices(cls: type) -> tuple[str, ...] | None:
    tag = _fields(cls).get("type")
    return get_args(tag[0]) if tag is not None and get_origin(tag[0]) is Literal else None


def _convert_dataclass(cls: type, value: object, path: str, problems: list[str]) -> object:
    fields = _fields(cls)
    tags = _tag_choices(cls)
    prefix = f"{path}." if path else ""
    if tags is not None:
        value = _normalise_tagged(value, tags)
    if not isinstance(value, Mapping):
        raise _Invalid(f"one of {', '.join(repr(t) for t in tags)}" if tags else "a mapping")
    kwargs: dict[str, Any] = {}
    before = len(problems)
    kind: str | None = None
    if tags is not None and "type" in value:
        kind = _convert(fields["type"][0], value["type"], f"{prefix}type", {}, problems)
    elif tags is not None and fields["type"][1].default is not dataclasses.MISSING:
        kind = fields["type"][1].default  # keys of other types are still refused
    for key, item in value.items():
        key_path = f"{prefix}{key}"
        if not isinstance(key, str) or key not in fields:
            hint = _did_you_mean(key, fields) if isinstance(key, str) else ""
            problems.append(f"{key_path}: unknown key{hint}")
            continue
        if key == "type":
            kwargs[key] = kind
            continue
        tp, fld = fields[key]
        kinds = fld.metadata.get("kinds")
        if kind is not None and kinds and kind not in kinds:
            users = ", ".join(repr(k) for k in kinds)
            problems.append(f"{key_path}: not used by type '{kind}' (used by {users})")
            continue
        kwargs[fld.name] = _convert(tp, item, key_path, fld.metadata, problems)
    for name, (_tp, fld) in fields.items():
        required = fld.default is dataclasses.MISSING and fld.default_factory is dataclasses.MISSING
        if required and name not in value:
            problems.append(f"{prefix}{name}: required")
    if len(problems) > before:
        return None
    instance = cls(**kwargs)
    for problem in _SEMANTIC_CHECKS.get(cls, _no_checks)(instance):
        problems.append(f"{prefix}{problem}")
    return instance


def _normalise_tagged(value: object, tags: tuple[str, ...]) -> object:
    """Accept ``ratio``, ``{type: ratio, rate: 0.1}`` and ``{ratio: {rate: 0.1}}`` alike."""
    if isinstance(value, str):
        return {"type": value}
    if isinstance(value, Mapping) and len(value) == 1:
        ((key, inner),) = value.items()
        if key in tags and (inner is None or isinstance(inner, Mapping)):
            return {"type": key, **(inner or {})}
    return value


# --- checks that span several keys -----------------------------------------------------------


def _no_checks(_instance: Any) -> list[str]:
    return []


def _check_sampling(s: m.SamplingSettings) -> list[str]:
    if s.type == "ratio" and (s.rate is None or not 0.0 <= s.rate <= 1.0):
        return [f"rate: expected a number from 0 to 1 for type 'ratio', got {s.rate!r}"]
    if s.type == "rate_limiting" and (s.rate is None or s.rate <= 0):
        return [f"rate: expected a positive number of traces per second, got {s.rate!r}"]
    if s.type == "parent_based" and s.root is not None and s.root.type == "parent_based":
        return ["root: expected the sampler for root spans, not another 'parent_based'"]
    return []


_TARGET_KEYS = {"tcp": ("host", "port"), "http": ("url",), "script": ("command",),
                "disk": ("path",), "sqlalchemy": ("url",), "redis": ("url",),
                "function": ("target",)}  # fmt: skip


def _check_target(t: m.HealthCheckTargetSettings) -> list[str]:
    needed = _TARGET_KEYS[t.type]
    problems = [
        f"{name}: required for type '{t.type}'" for name in needed if getattr(t, name) is None
    ]
    if t.type == "disk" and t.min_free is None and t.min_free_percent is None:
        problems.append("min_free: required for type 'disk' (or min_free_percent)")
    if t.type == "function" and t.target is not None and ":" not in t.target:
        problems.append(f"target: expected 'module:function', got {t.target!r}")
    return problems


def _check_processor(p: m.LogProcessorSettings) -> list[str]:
    if p.type == "filter" and not p.field:
        return ["field: required for type 'filter'"]
    if p.type == "add_fields" and not p.fields:
        return ["fields: expected at least one field to add for type 'add_fields'"]
    if p.type == "sample" and p.every is None:
        return ["every: required for type 'sample' (keep 1 event in `every`)"]
    return []


def _check_batch(b: m.BatchSettings) -> list[str]:
    if b.max_export_batch_size > b.max_queue_size:
        return [
            f"max_export_batch_size: expected at most max_queue_size ({b.max_queue_size}), "
            f"got {b.max_export_batch_size}"
        ]
    return []


def _check_metrics(s: m.MetricsSettings) -> list[str]:
    buckets = s.duration_buckets
    if buckets is not None and (not buckets or list(buckets) != sorted(set(buckets))):
        return [f"duration_buckets: expected increasing numbers, got {list(buckets)!r}"]
    return []


def _check_metrics_exporter(e: m.MetricsExporterSettings) -> list[str]:
    problems = []
    if e.type == "prometheus" and e.endpoint is None:  # otlp: a local collector by default
        problems.append(f"endpoint: required for type '{e.type}'")
    if e.type == "datadog" and not e.api_key:
        problems.append("api_key: required for type 'datadog'")
    if e.basic_auth is not None and e.bearer_token is not None:
        problems.append("bearer_token: expected basic_auth or bearer_token, not both")
    return problems


_RECEIVER_KEYS = {"webhook": ("url",), "slack": ("url",), "email": ("smtp_host", "sender"),
                  "log": ()}  # fmt: skip


def _check_receiver(r: m.AlertReceiverSettings) -> list[str]:
    problems = [
        f"{key}: required for type '{r.type}'"
        for key in _RECEIVER_KEYS[r.type]
        if getattr(r, key) is None
    ]
    if r.type == "email" and not r.to:
        problems.append("to: expected at least one address for type 'email'")
    if (r.username is None) != (r.password is None):
        problems.append("password: expected username and password together")
    return problems


def _check_alerting(a: m.AlertingSettings) -> list[str]:
    names = [r.name for r in a.receivers]
    problems = [
        f"receivers[{i}].name: expected a name used once, got {name!r} again"
        for i, name in enumerate(names)
        if name in names[:i]
    ]
    known = set(names) | {"log"}
    listed = ", ".join(repr(n) for n in sorted(known))
    for i, route in enumerate(a.routes):
        if route.receiver not in known:
            problems.append(
                f"routes[{i}].receiver: expected one of {listed}, got {route.receiver!r}"
            )
    if a.default_receiver not in known:
        problems.append(f"default_receiver: expected one of {listed}, got {a.default_receiver!r}")
    return problems


_SEMANTIC_CHECKS: dict[type, Callable[[Any], list[str]]] = {
    m.AlertReceiverSettings: _check_receiver,
    m.AlertingSettings: _check_alerting,
    m.MetricsExporterSettings: _check_metrics_exporter,
    m.SamplingSettings: _check_sampling,
    m.HealthCheckTargetSettings: _check_target,
    m.LogProcessorSettings: _check_processor,
    m.BatchSettings: _check_batch,
    m.MetricsSettings: _check_metrics,
}


def normalise(cls: type, data: Any) -> Any:
    """Rewrite the short forms of tagged sections (``ratio``, ``{ratio: {...}}``) as
    ``{type: ..., ...}`` throughout ``data``, so that sources can be merged key by key."""
    if not dataclasses.is_dataclass(cls):
        return data
    tags = _tag_choices(cls)
    if tags is not None:
        data = _normalise_tagged(data, tags)
    if not isinstance(data, Mapping):
        return data
    fields = _fields(cls)
    result: dict[str, Any] = {}
    for key, value in data.items():
        if key in fields:
            tp = fields[key][0]
            inner = _section_type(tp)
            if inner is not None and isinstance(value, list | tuple) and get_origin(tp) is tuple:
                value = [normalise(inner, item) for item in value]
            elif inner is not None:
                value = normalise(inner, value)
        result[key] = value
    return result


def _section_type(tp: Any) -> type | None:
    """The dataclass inside ``X``, ``X | None`` or ``tuple[X, ...]``, if any."""
    if dataclasses.is_dataclass(tp):
        return typing.cast(type, tp)
    for arg in get_args(tp):
        if dataclasses.is_dataclass(arg):
            return typing.cast(type, arg)
    return None
