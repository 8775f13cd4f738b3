"""Reading the configuration: one YAML file plus ``OBSY_*`` environment overrides, validated with pydantic.

Precedence, lowest first: model defaults, the YAML file, environment variables.

Environment variables address nested keys with a double underscore:
``OBSY_BROKER__HOST=mqtt.local`` sets ``broker.host``. A variable ending in
``_FILE`` reads the value from that file instead (the Docker secrets convention):
``OBSY_BROKER__PASSWORD_FILE=/run/secrets/mqtt_password`` sets ``broker.password``.

Every mistake (an unknown key, a wrong type, a missing required value, bad YAML)
raises :class:`ConfigError`, whose message has one line per problem naming the key
and where it came from (the file, or the environment variable).
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from obsy.config import model
from obsy.config.base import CONFIG_PATH_ENV, ENV_PREFIX, NOT_CONFIG_ENV, ConfigError


def read_yaml(path: Path) -> dict[str, Any]:
    """A config file's mapping, or a :class:`ConfigError` naming the file and what is wrong with it."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"config file {path} does not exist"]) from None
    except OSError as exc:
        raise ConfigError([f"config file {path} cannot be read: {exc.strerror}"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f" at line {mark.line + 1}, column {mark.column + 1}"
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([f"config file {path} is not valid YAML{where}: {problem}"]) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError([f"config file {path} must hold a mapping of sections at the top, not {type(data).__name__}"])
    return data


def _env_overrides(env: Mapping[str, str]) -> tuple[dict[str, Any], dict[tuple[str, ...], str]]:
    """Nested overrides from OBSY_* variables, and which variable set each key."""
    overrides: dict[str, Any] = {}
    origin: dict[tuple[str, ...], str] = {}
    for name, raw in sorted(env.items()):
        if not name.startswith(ENV_PREFIX) or name in NOT_CONFIG_ENV:
            continue
        key = name[len(ENV_PREFIX) :]
        value: Any = raw
        if key.endswith("_FILE"):
            key = key[: -len("_FILE")]
            try:
                value = Path(raw).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError(
                    [f"environment variable {name}: cannot read secret file {raw}: {exc.strerror}"]
                ) from None
        path = tuple(part.lower() for part in key.split("__") if part)
        if not path:
            continue
        # Let YAML parsing turn "8883" into an int and "true" into a bool, as it would in the file.
        if isinstance(value, str) and not name.endswith("_FILE"):
            try:
                parsed = yaml.safe_load(value)
            except yaml.YAMLError:
                parsed = value
            value = parsed if isinstance(parsed, (int, float, bool)) or parsed is None else value
        node = overrides
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError([f"environment variable {name} conflicts with another OBSY_ variable"])
        node[path[-1]] = value
        origin[path] = name
    return overrides, origin


def merge_settings(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``override`` laid over it, section by section (nested mappings merge, the rest replaces)."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge_settings(dict(merged[key]), value)
        else:
            merged[key] = value
    return merged


def _known_keys(model: type[BaseModel], path: tuple[str, ...]) -> list[str]:
    """Field names accepted at ``path`` (for 'did you mean' hints)."""
    current: Any = model
    for part in path:
        if part.isdigit() and get_origin(current) is list:  # an entry of a list of sections
            current = get_args(current)[0]
            continue
        member = _tagged_member(current, part)
        if member is not None:  # a list entry of a tagged union (e.g. a finish stage): pydantic names the tag
            current = member
            continue
        field = current.model_fields.get(part) if isinstance(current, type) and issubclass(current, BaseModel) else None
        if field is None:
            return []
        current = field.annotation
    if isinstance(current, type) and issubclass(current, BaseModel):
        return [name for name in current.model_fields if name != "source_file"]
    return []


def _tagged_member(annotation: Any, tag: str) -> type[BaseModel] | None:
    """The member of a discriminated union (``Annotated[A | B, Field(discriminator=...)]``) with ``tag``."""
    if get_origin(annotation) is not Annotated:
        return None
    union, *extras = get_args(annotation)
    key = next((getattr(e, "discriminator", None) for e in extras if getattr(e, "discriminator", None)), None)
    if not isinstance(key, str):
        return None
    for member in get_args(union):
        field = getattr(member, "model_fields", {}).get(key)
        if field is not None and tag in get_args(field.annotation):
            return member
    return None


def _describe(error: dict[str, Any], source: str, origin: dict[tuple[str, ...], str]) -> str:
    loc = tuple(str(part) for part in error["loc"])
    key = ".".join(loc) if loc else "(top level)"
    where = f"environment variable {origin[loc]}" if loc in origin else source
    kind = error["type"]
    if kind == "extra_forbidden":
        hint = ""
        close = difflib.get_close_matches(loc[-1], _known_keys(model.ObsyConfig, loc[:-1]), n=1)
        if close:
            hint = f" (did you mean '{'.'.join((*loc[:-1], close[0]))}'?)"
        return f"unknown key '{key}' in {where}{hint}"
    if kind == "missing":
        return f"missing required key '{key}' in {where}"
    message = error["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    given = error.get("input")
    shown = "" if isinstance(given, (dict, list)) or kind.startswith("value_error") else f" (got {given!r})"
    return f"invalid value for '{key}' in {where}: {message}{shown}"


def find_config_path(
    explicit: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None
) -> Path | None:
    """The config file to use: the argument, else $OBSY_CONFIG, else ./config/obsy.yaml if present."""
    env = os.environ if env is None else env
    if explicit:
        return Path(explicit)
    if env.get(CONFIG_PATH_ENV):
        return Path(env[CONFIG_PATH_ENV])
    default = Path("config/obsy.yaml")
    return default if default.exists() else None


def load_config(path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None) -> model.ObsyConfig:
    """Load and validate the configuration; raises ConfigError with one line per problem."""
    env = os.environ if env is None else env
    config_path = find_config_path(path, env)
    data: dict[str, Any] = read_yaml(config_path) if config_path is not None else {}
    overrides, origin = _env_overrides(env)
    merged = merge_settings(data, overrides)
    merged.pop("source_file", None)
    source = f"config file {config_path}" if config_path is not None else "the configuration (no config file given)"
    try:
        config = model.ObsyConfig.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError([_describe(err, source, origin) for err in exc.errors()]) from None
    config.source_file = config_path
    return config
