"""The target the environment selects, as the operators' commands see it: its admin, built by the
same target resource the code location uses, from the same configuration (`build_target`)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from taxi_pipeline.lib.admin.base import Admin, ConfigError


@contextlib.contextmanager
def open_admin() -> Iterator[Admin]:
    """The admin of the target `TAXI_TARGET` names (default `local`), configured like the code location."""
    from taxi_pipeline.defs.resources import build_target

    try:
        resource = build_target(os.environ.get("TAXI_TARGET", "local"))
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    # Resolves the dg.EnvVar fields and sets up nested resources, as Dagster does for an asset.
    with resource.process_config_and_initialize_cm() as target:
        yield target.admin()
