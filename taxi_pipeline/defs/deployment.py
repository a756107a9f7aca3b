"""Which run launchers the embedded DuckDB target can run under: one file, one writer, one host.

The DuckDB warehouse is a file on the disk of the machine that runs the run, and one process at a
time may write it. A launcher that starts each run in its own container, pod or task (Docker,
Kubernetes, Celery, ECS) gives every run its own disk: each run would merge its month into a
private copy of the warehouse that vanishes with the container (or, on a shared volume, fail on
the file's lock). Such a run must stop before it writes anything, and say what to use instead.
"""

from __future__ import annotations

import dagster as dg

# Launchers that start every run as a process on the machine of the daemon / webserver / code
# server (SyncInMemoryRunLauncher runs it in the calling process: `dg.materialize`, tests).
SINGLE_HOST_LAUNCHERS = frozenset({"DefaultRunLauncher", "SyncInMemoryRunLauncher"})


class SingleHostTargetError(Exception):
    """The embedded DuckDB target was asked to run under a launcher that spreads runs over hosts."""


def run_launcher_name(instance: dg.DagsterInstance) -> str:
    """The class name of the instance's run launcher. Read from the instance's config where it has
    one, so that the check neither imports the launcher's package nor connects to a cluster."""
    launcher = instance.get_ref().run_launcher_data if instance.is_persistent else None
    return launcher.class_name if launcher is not None else type(instance.run_launcher).__name__


def check_single_host_target(instance: dg.DagsterInstance | None, warehouse_kind: str) -> None:
    """Raises SingleHostTargetError when the DuckDB warehouse would run under a multi-host launcher."""
    if instance is None or warehouse_kind != "duckdb":
        return
    launcher = run_launcher_name(instance)
    if launcher in SINGLE_HOST_LAUNCHERS:
        return
    raise SingleHostTargetError(
        f"The embedded DuckDB target (TAXI_TARGET=local) cannot run under {launcher}. DuckDB is one "
        f"file on one machine's disk, written by one process at a time, and {launcher} starts each "
        "run in its own container, pod or worker: every run would load its month into a private "
        "copy of the warehouse, or fail on the file's lock. Nothing was written. Set TAXI_TARGET=gcp "
        "(GCS + BigQuery, with GCP_PROJECT_ID and GCP_BUCKET_NAME) on the code server and in the run "
        "workers' environment, or run on one host with the default run launcher (deploy/README.md)."
    )
