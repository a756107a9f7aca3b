"""`preflight`: is the GCP project ready? Checks it for real before a user launches a backfill."""

from __future__ import annotations

import argparse
import os

from taxi_pipeline.cli.open_admin import selected_target
from taxi_pipeline.lib.admin.base import ConfigError
from taxi_pipeline.lib.analytics.project import project_for
from taxi_pipeline.lib.colours import COLOURS

HELP = "check a GCP project before the first load: identity, bucket, dataset, locations, permissions, a smoke load, cost"
DESCRIPTION = f"""{HELP.capitalize()}.

Runs with TAXI_TARGET=gcp and the same variables as the code location (GCP_PROJECT_ID,
GCP_BUCKET_NAME, GCP_LOCATION, TAXI_DATASET, GOOGLE_APPLICATION_CREDENTIALS). In order:
  - the identity the clients use, and the project;
  - the bucket (exists, location) and the dataset (exists or is created, location, expirations),
    and whether they are colocated, as BigQuery's load jobs require;
  - the bucket permissions this project needs, tested (testIamPermissions), each missing one named
    with the role that grants it;
  - a smoke load of two small bundled files (99 release CSV rows, 60 TLC Parquet rows with NULL
    codes) through the real warehouse code into scratch tables `preflight_<token>_green_*` of
    the dataset and `gs://<bucket>/preflight/<token>/`, both removed afterwards; its ids are
    compared with the reference, and its jobs' bytes billed shown (a few tens of MB at most);
  - a dry run of the month's MERGE against the live main table: its bytes estimate must be about
    one month's partition, not the table; a sandbox project (no billing) refuses it;
  - the analytics models (dbt): a dbt with the BigQuery adapter (TAXI_DBT_EXECUTABLE), and their
    staging SQL compiled by it and dry-run against the main tables, with its bytes;
  - the cost of a backfill over --from..--to on on-demand pricing (an estimate).

exit codes: 0 ready, 1 not ready (each FAIL line says why and what to do), 2 usage error"""


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("preflight", help=HELP, description=DESCRIPTION,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--from", dest="first", default="2019-01", metavar="YYYY-MM",
                        help="first month of the backfill to estimate (default 2019-01)")
    parser.add_argument("--to", dest="last", default="2020-12", metavar="YYYY-MM",
                        help="last month of the backfill to estimate (default 2020-12)")
    parser.add_argument("--colour", action="append", choices=sorted(COLOURS), dest="colours",
                        help="colour(s) of the estimate (default: all)")
    parser.add_argument("--no-smoke", action="store_true", help="skip the smoke load and the dry runs")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from taxi_pipeline.lib.preflight.estimate import estimate
    from taxi_pipeline.lib.preflight.run import Preflight, month

    try:
        first, last = month(args.first), month(args.last)
    except ValueError as exc:
        raise ConfigError(f"--from/--to take YYYY-MM: {exc}") from exc
    if os.environ.get("TAXI_TARGET") != "gcp":
        raise ConfigError("preflight checks the GCP target: set TAXI_TARGET=gcp (and GCP_PROJECT_ID, GCP_BUCKET_NAME)")
    target = selected_target()
    preflight = Preflight(target, project_for(target.analytics_output()))
    print(f"preflight: project {target.project}, bucket gs://{target.bucket}, dataset {target.dataset}")
    failed = 0
    for check in preflight.checks(smoke=not args.no_smoke):
        print(check.line(), flush=True)
        failed += check.status == "FAIL"
    colours = args.colours or sorted(COLOURS)
    print(f"  info  backfill estimate: {estimate(colours, first, last).describe(colours, first, last)}")
    print("not ready: fix each FAIL above, then run preflight again" if failed else
          "ready: launch the backfill (dg dev, Backfill ..., or a schedule)")
    return 1 if failed else 0
