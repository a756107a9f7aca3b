"""`python -m taxi_pipeline <command>`: the operators' commands, on the target the environment selects.

Exit codes scripts can rely on: 0 done, 1 the command failed (the message says why, on stderr),
2 a usage error (unknown command or colour, missing configuration).
"""

from __future__ import annotations

import argparse
import sys

from taxi_pipeline.cli import adopt, counts, fresh_start, preflight
from taxi_pipeline.lib.admin.base import OperatorError
from taxi_pipeline.lib.warehouses.duckdb.admin import WarehouseLockedError
from taxi_pipeline.lib.warehouses.shape import AdoptError, ForeignTableError

EPILOG = """environment (as for the code location):
  TAXI_TARGET      local (default: DuckDB + folder under TAXI_HOME) or gcp (BigQuery + GCS)
  TAXI_HOME        folder of the embedded bucket and warehouse (default .taxi)
  TAXI_DATASET     DuckDB schema / BigQuery dataset (default zoomcamp)
  GCP_PROJECT_ID, GCP_BUCKET_NAME, GCP_LOCATION        for TAXI_TARGET=gcp
  STORAGE_EMULATOR_HOST, BIGQUERY_EMULATOR_HOST        GCP emulators
  DAGSTER_HOME     the Dagster instance whose records fresh-start wipes

exit codes: 0 done, 1 failed (reason on stderr), 2 usage error
more: docs/operating.md"""


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="python -m taxi_pipeline", description="Operate the taxi pipeline's warehouse and bucket.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = root.add_subparsers(title="commands", metavar="<command>")
    for module in (counts, fresh_start, adopt, preflight):
        module.add_parser(commands)
    return root


def main(argv: list[str] | None = None) -> int:
    root = parser()
    try:
        args = root.parse_args(argv)
    except SystemExit as exit_:  # argparse exits 2 on a usage error, 0 after --help
        return int(exit_.code or 0)
    if not hasattr(args, "run"):
        root.print_help(sys.stderr)
        return 2
    try:
        return args.run(args)
    except (OperatorError, AdoptError, ForeignTableError, WarehouseLockedError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return getattr(exc, "exit_code", 1)
    except Exception as exc:  # a cloud or database error: its own words, without a traceback
        if _is_service_error(exc):
            print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 1
        raise


def _is_service_error(exc: Exception) -> bool:
    import duckdb

    if isinstance(exc, duckdb.Error):
        return True
    try:
        from google.api_core.exceptions import GoogleAPIError
    except ImportError:
        return False
    return isinstance(exc, GoogleAPIError)
