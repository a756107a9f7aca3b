"""The target the environment selects, as the operators' commands see it: its admin, from the same
target object the code location's resource makes, read from the same variables."""

from __future__ import annotations

from taxi_pipeline.lib.admin.base import Admin, ConfigError
from taxi_pipeline.lib.settings import SettingsError, read_settings
from taxi_pipeline.lib.targets import TargetConfigError, from_environment
from taxi_pipeline.lib.targets.base import Target


def selected_target() -> Target:
    """The target `TAXI_TARGET` names (default `local`), configured like the code location, whose
    settings are checked the same way first (`lib.settings`)."""
    try:
        read_settings()
        return from_environment()
    except (SettingsError, TargetConfigError) as exc:
        raise ConfigError(str(exc)) from exc


def open_admin() -> Admin:
    return selected_target().admin()
