"""The operators' CLI and the jobs on the GCS + BigQuery target where only it has something to show,
against fake-gcs-server and local-bigquery on 127.0.0.1: what each BigQuery step's jobs cost, a
bucket in another location. What the CLI does the same on both targets (adopt the course's Kestra
table, fresh-start) is in `test_operate_both.py`.
"""

from __future__ import annotations

import pytest

from taxi_pipeline_tests.helpers.emulators import PROJECT
from taxi_pipeline_tests.helpers.operate_targets import execute_job

pytestmark = pytest.mark.gcp


def test_each_bigquery_step_shows_what_its_jobs_cost(bq_proxy, gcp_env, tmp_path):
    """The staging and merge materializations carry their jobs' statistics (bytes processed and
    billed, slot-ms) and the ids of exactly the jobs the pipeline sent (as the proxy recorded them)."""
    import dagster as dg

    execute_job("green_taxi_job", "2019-01-01", gcp_env)
    sent = {(r.response or {}).get("jobReference", {}).get("jobId"): r.body for r in bq_proxy.requests
            if r.method == "POST" and r.path.endswith("/jobs") and isinstance(r.response, dict)}
    with dg.DagsterInstance.from_config(str(tmp_path / "dagster")) as instance:
        for key, expected in (("green_staging", ("load", "query")), ("green_tripdata", ("query",))):
            event = instance.get_latest_materialization_event(dg.AssetKey(key))
            metadata = event.asset_materialization.metadata
            ids = metadata["bigquery_job_ids"].value.split(", ")
            assert metadata["bigquery_jobs"].value == len(ids) >= len(expected)
            assert {"bigquery_bytes_processed", "bigquery_bytes_billed", "bigquery_slot_ms"} <= set(metadata)
            kinds = [next(iter(sent[job]["configuration"])) for job in ids]  # every id is a job the pipeline sent
            assert set(kinds) == set(expected)
        merged = [sent[job]["configuration"]["query"]["query"] for job in ids]
        assert any(statement.startswith("MERGE ") and " ON FALSE " in statement for statement in merged)


def test_a_bucket_in_another_location_fails_the_load_naming_the_dataset_location_not_the_file(bq_proxy, gcp_env):
    """The emulators have one location, so BigQuery's refusal is injected into the load job's answer
    (the text BigQuery gives a job across locations); the message must not blame the file."""
    refusal = "Cannot read and write in different locations: source: EU, destination: US"

    def done_load(r) -> bool:
        job = r.response if isinstance(r.response, dict) else {}
        return "load" in job.get("configuration", {}) and job.get("status", {}).get("state") == "DONE"

    def refused(job: dict) -> dict:
        error = {"reason": "invalid", "message": refusal}
        return {**job, "status": {"state": "DONE", "errorResult": error, "errors": [error]}}

    bq_proxy.rewrite_next(done_load, refused)
    output = execute_job("green_taxi_job", "2019-01-01", gcp_env, succeed=False)
    assert "DatasetError" in output and refusal in output
    assert f"into dataset {PROJECT}.{gcp_env['TAXI_DATASET']}, which is in US" in output
    assert "preflight` shows both locations" in output and "InvalidFileError" not in output
