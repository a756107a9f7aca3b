"""`python -m taxi_pipeline preflight` against fake-gcs-server and local-bigquery on 127.0.0.1 (the
`preflight` subprocess with the real Google clients), and its refusals decided on recorded answers
where no emulator can give them: a missing permission, buckets and datasets in other locations, a
sandbox project."""

from __future__ import annotations

import datetime as dt

import pytest
from google.cloud import storage

from taxi_pipeline.lib.preflight import verdicts
from taxi_pipeline.lib.preflight.estimate import estimate
from taxi_pipeline_tests.helpers.emulators import PROJECT
from taxi_pipeline_tests.helpers.operate_targets import cli, execute_job
from taxi_pipeline_tests.test_analytics_bigquery import DBT_BIGQUERY


@pytest.mark.gcp
def test_preflight_on_the_emulators_loads_checks_and_cleans_up(gcp_env):  # noqa: F811
    dataset, bucket = gcp_env["TAXI_DATASET"], gcp_env["GCP_BUCKET_NAME"]
    execute_job("green_taxi_job", "2020-04-01", gcp_env)  # a live month: the MERGE dry run meets a real table
    with_dbt = {**gcp_env, "TAXI_DBT_EXECUTABLE": str(DBT_BIGQUERY)}
    done = cli("preflight", "--from", "2019-01", "--to", "2020-12", env=with_dbt)
    print(done.stdout, done.stderr)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert f"  ok    bucket: gs://{bucket} exists, location " in "\n".join(lines)
    assert any(line.startswith(f"  ok    dataset: {PROJECT}.{dataset} exists") for line in lines)
    smoke = next(line for line in lines if "smoke load" in line)
    assert smoke.startswith("  ok ") and "green_tripdata_2019-01.csv: 99 rows, 99 distinct ids, equal to the reference ids" in smoke
    assert "green_tripdata_2022-01.parquet: 60 rows, 60 distinct ids" in smoke  # NULL codes staged
    assert any(line.startswith("  ok    billing:") for line in lines)
    assert any("merge cost" in line and "MERGE of 2020-04" in line for line in lines)
    assert "2019-01..2020-12: 48 months, ~116,825" in done.stdout and lines[-1].startswith("ready")
    # The analytics models' staging SQL, compiled by dbt-bigquery and dry-run on the live tables.
    assert any(line.startswith("  ok    analytics stg_green_trips: dry run for 2020-04: ") for line in lines), lines
    assert "  info  analytics stg_yellow_trips: not dry-run: no month of its main table is loaded yet" in lines
    without = cli("preflight", "--from", "2019-01", "--to", "2019-01", env=gcp_env)
    assert "  info  analytics: no dbt with the BigQuery adapter here" in without.stdout
    # Nothing of the smoke load is left, and the live month is as it was.
    assert not [b.name for b in storage.Client(project=PROJECT).list_blobs(bucket, prefix="preflight/")]
    counts = cli("counts", env=gcp_env).stdout
    assert "preflight" not in counts and "green_tripdata_2020-04.csv             35,612 rows" in counts


@pytest.mark.gcp
def test_preflight_names_a_missing_bucket_and_exits_1(gcp_env):  # noqa: F811
    done = cli("preflight", "--no-smoke", env=gcp_env)
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"  FAIL  bucket: gs://{gcp_env['GCP_BUCKET_NAME']} does not exist: create it in US" in done.stdout
    assert done.stdout.splitlines()[-1].startswith("not ready")
    usage = cli("preflight", "--from", "2019", env=gcp_env)
    assert usage.returncode == 2 and "YYYY-MM" in usage.stderr


def test_a_missing_permission_is_named_with_the_role_that_grants_it():
    # What testIamPermissions answers an account with Storage Object Admin only.
    granted = {"storage.objects.create", "storage.objects.delete", "storage.objects.get", "storage.objects.list",
               "storage.objects.update"}
    check = verdicts.missing_permissions(frozenset(granted | {"storage.buckets.get"}), granted, "gs://b")
    assert check.line() == ("  FAIL  permissions on gs://b: missing storage.buckets.get (grant Storage Legacy "
                            "Bucket Reader, roles/storage.legacyBucketReader, on the bucket)")
    assert verdicts.missing_permissions(frozenset(granted), granted, "gs://b").status == verdicts.OK


def test_locations_must_be_colocated_as_bigquery_documents():
    assert verdicts.colocated("US", "US").status == verdicts.OK
    assert verdicts.colocated("US-CENTRAL1", "US").status == verdicts.OK  # a region inside the multi-region
    assert verdicts.colocated("EUROPE-WEST1", "EU").status == verdicts.OK
    wrong = verdicts.colocated("EUROPE-WEST1", "US")
    assert wrong.line() == (
        "  FAIL  locations: the bucket is in EUROPE-WEST1 and the dataset in US: BigQuery cannot load from a "
        "bucket outside the dataset's location. Use a bucket in US (GCP_BUCKET_NAME), or a dataset in "
        "EUROPE-WEST1 (TAXI_DATASET, GCP_LOCATION)")
    assert verdicts.configured_location("US", "EU").detail.endswith("set GCP_LOCATION=EU")


def test_a_sandbox_project_is_named_from_its_refusal_or_its_expiry():
    # BigQuery's answer to DML in a project without billing.
    refused = ("403 Billing has not been enabled for this project. Enable billing at "
               "https://console.cloud.google.com/billing. DML queries are not allowed in the free tier.")
    check = verdicts.billing(refused, None, None)
    assert check.status == verdicts.FAIL and "BigQuery sandbox" in check.detail and "sandbox#upgrade" in check.detail
    sixty_days = 60 * 86_400_000
    expiry = verdicts.billing(None, sixty_days, sixty_days)
    assert expiry.status == verdicts.FAIL and "60 days (the sandbox's 60 days" in expiry.detail
    assert verdicts.billing(None, None, None).status == verdicts.OK


def test_an_unpruned_merge_estimate_is_refused():
    assert verdicts.merge_pruned(900, 800, 200, 10_000, "2020-04").status == verdicts.OK
    assert verdicts.merge_pruned(5_000, 800, 200, 10_000, "2020-04").status == verdicts.FAIL


def test_the_backfill_estimate_counts_the_course_rows():
    course = estimate(["green", "yellow"], dt.date(2019, 1, 1), dt.date(2020, 12, 1))
    assert course.months == 48 and course.guessed_months == 0
    assert abs(course.rows - 116_825_619) < 48  # the yearly totals, split into whole months
