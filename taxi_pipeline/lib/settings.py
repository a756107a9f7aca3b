"""The environment's settings, checked once when the code location loads.

Every `TAXI_*` and `GCP_*` variable a user can set is read and checked here, so that a typo fails
the load with one line that names the variable, the value and what it may be, before any run
exists (a run that fails later, inside a step, would stay in the run history as a failure and
would already have asked the source for its file).
"""

from __future__ import annotations

import difflib
import os
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass

from taxi_pipeline.lib.identifiers import validate_bucket_name, validate_dataset

TARGETS = ("local", "gcp")
SOURCES = ("auto", "release", "tlc")
URL_SCHEMES = ("http", "https", "file")
# https://cloud.google.com/resource-manager/docs/creating-managing-projects#before_you_begin:
# 6 to 30 lower-case letters, digits or hyphens, starting with a letter, not ending with a hyphen;
# older projects may carry a domain prefix (`example.com:my-project`).
_PROJECT_ID = re.compile(r"([a-z0-9.-]+:)?[a-z][a-z0-9-]{4,28}[a-z0-9]")
_LOCATION = re.compile(r"[A-Za-z][A-Za-z0-9-]{1,39}")


class SettingsError(ValueError):
    """A setting the code location cannot run with; the message is the line a user needs."""


@dataclass(frozen=True)
class Settings:
    target: str
    source: str
    dataset: str


# What a user may type for a target, by the engine's or the service's name.
_TARGET_WORDS = {"duckdb": "local", "embedded": "local", "bigquery": "gcp", "gcs": "gcp", "google": "gcp"}


def _one_of(name: str, value: str, allowed: tuple[str, ...], words: Mapping[str, str] | None = None) -> str:
    if value in allowed:
        return value
    words = words or {}
    close = [words[w] for w in difflib.get_close_matches(value.lower(), list(words), n=1)]
    close = close or difflib.get_close_matches(value.lower(), allowed, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise SettingsError(f"{name}={value!r} is not valid{hint}: use one of {', '.join(allowed)}")


def _url(name: str, value: str) -> None:
    parsed = urllib.parse.urlsplit(value)
    if parsed.scheme not in URL_SCHEMES or (parsed.scheme != "file" and not parsed.netloc) or (
            parsed.scheme == "file" and not parsed.path):
        raise SettingsError(
            f"{name}={value!r} is not a source URL: use http://host/path, https://host/path or "
            "file:///absolute/folder (a mirror laid out like the source)"
        )


def _positive_int(name: str, value: str) -> None:
    if not value.strip().isdigit() or int(value) <= 0:
        raise SettingsError(f"{name}={value!r} is not valid: use a whole number above 0")


def _cron(name: str, value: str) -> None:
    fields = value.split()
    if len(fields) != 5 or not all(re.fullmatch(r"[0-9*/,\-A-Za-z]+", f) for f in fields):
        raise SettingsError(f"{name}={value!r} is not a cron string: use five fields, e.g. '0 9 1 * *' or '* * * * *'")


def _check(check, name: str, value: str) -> None:
    try:
        check(value)
    except ValueError as exc:
        raise SettingsError(f"{name}={value!r} is not valid: {exc}") from None


def _check_gcp(env: Mapping[str, str]) -> None:
    """The settings `TAXI_TARGET=gcp` needs."""
    for name in ("GCP_PROJECT_ID", "GCP_BUCKET_NAME"):
        if not env.get(name):
            raise SettingsError(f"TAXI_TARGET=gcp needs {name}: set it to your {name[4:].lower().replace('_', ' ')}")
    if not _PROJECT_ID.fullmatch(env["GCP_PROJECT_ID"]):
        raise SettingsError(
            f"GCP_PROJECT_ID={env['GCP_PROJECT_ID']!r} is not a project ID: 6-30 lower-case letters, digits "
            "or hyphens, starting with a letter (the ID, not the project's display name or number)"
        )
    _check(validate_bucket_name, "GCP_BUCKET_NAME", env["GCP_BUCKET_NAME"])
    location = env.get("GCP_LOCATION", "US")
    if not _LOCATION.fullmatch(location):
        raise SettingsError(f"GCP_LOCATION={location!r} is not a location: e.g. US, EU or europe-west1")


def read_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Checks every setting in `env` (default: the process environment); raises SettingsError
    with the first problem found."""
    env = os.environ if env is None else env
    target = _one_of("TAXI_TARGET", env.get("TAXI_TARGET", "local"), TARGETS, _TARGET_WORDS)
    source = _one_of("TAXI_SOURCE", env.get("TAXI_SOURCE", "auto"), SOURCES)
    dataset = env.get("TAXI_DATASET", "zoomcamp")
    _check(validate_dataset, "TAXI_DATASET", dataset)
    for name in ("TAXI_SOURCE_URL", "TAXI_TLC_URL"):
        if name in env:
            _url(name, env[name])
    for name in ("TAXI_SENSOR_INTERVAL_S", "TAXI_SENSOR_LOOKBACK_MONTHS", "TAXI_DOWNLOAD_DEADLINE_S"):
        if env.get(name):
            _positive_int(name, env[name])
    if env.get("TAXI_SCHEDULE_CRON"):
        _cron("TAXI_SCHEDULE_CRON", env["TAXI_SCHEDULE_CRON"])
    if target == "gcp":
        _check_gcp(env)
    _check_analytics(env)
    return Settings(target, source, dataset)


def _check_analytics(env: Mapping[str, str]) -> None:
    """The warehouse file's path and the dbt project's settings (docs/analytics.md)."""
    path = env.get("TAXI_DUCKDB_PATH")
    if path is not None and (not path.endswith(".duckdb") or os.path.isdir(path)):
        raise SettingsError(f"TAXI_DUCKDB_PATH={path!r} is not a DuckDB file's path: use a path ending in .duckdb, "
                            "e.g. /data/taxi_rides_ny.duckdb")
    project = env.get("TAXI_DBT_PROJECT_DIR")
    if project is not None and not os.path.isfile(os.path.join(project, "dbt_project.yml")):
        raise SettingsError(f"TAXI_DBT_PROJECT_DIR={project!r} holds no dbt_project.yml: point it at a dbt project's "
                            "folder, or unset it for the bundled analytics models")
    executable = env.get("TAXI_DBT_EXECUTABLE")
    if executable and not os.access(executable, os.X_OK):
        raise SettingsError(f"TAXI_DBT_EXECUTABLE={executable!r} is not an executable file: use the path of a dbt "
                            "command, e.g. /opt/dbt-bigquery/bin/dbt")
