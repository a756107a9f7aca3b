"""BigQuery's and GCS's answers the emulators never give, injected by the recording proxy in front
of them (the real clients, the real pipeline, local-bigquery and fake-gcs-server behind):
- a first MERGE refused with BigQuery's documented "Could not serialize access to table ... due
  to concurrent update" (https://cloud.google.com/bigquery/docs/troubleshoot-queries): retried;
- a MERGE job whose statistics carry `dmlStats` (local-bigquery reports none): its counts used;
- the move of a published month's file into place refused by GCS: the month is published in
  BigQuery, the file waits as `merging`, and the next run puts it in place first;
- two merges of a colour at once on a fresh dataset (Dagster's pool lets that through now and
  then): the loser's CREATE TABLE fails, and it merges its month all the same;
- the first months of a backfill creating the missing dataset at once: the losers' creates fail,
  and each finds the dataset made by another.
"""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import shutil
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from google.api_core.client_info import ClientInfo
from google.cloud import storage

from taxi_pipeline.lib.colours import GREEN
from taxi_pipeline.lib.raw_file import RawFile
from taxi_pipeline.lib.warehouses.bigquery.dataset import ensure_dataset
from taxi_pipeline_tests.helpers.bad_inputs import failure, md5
from taxi_pipeline_tests.helpers.bq_proxy import TEST_AGENT
from taxi_pipeline_tests.helpers.emulators import PROJECT
from taxi_pipeline_tests.helpers.servers import serve_folder
from taxi_pipeline_tests.helpers.support import MIRROR, load_month
from taxi_pipeline_tests.test_gcp import _counts, _merge_meta, gcp_resources

pytestmark = pytest.mark.gcp

APRIL = "2020-04-01"
KEY = "green/green_tripdata_2020-04.csv.gz"
SERIALIZE = "Could not serialize access to table {table} due to concurrent update"


@pytest.fixture
def names():
    suffix = uuid.uuid4().hex[:8]
    return {"bucket": f"taxi-merge-{suffix}", "dataset": f"zoomcamp_merge_{suffix}"}


def _statement(record) -> str:
    body = record.body if isinstance(record.body, dict) else {}
    return str(body.get("configuration", {}).get("query", {}).get("query", "") or body.get("query", ""))


def _is_merge_insert(record) -> bool:
    return record.method == "POST" and record.path.endswith(("/jobs", "/queries")) and \
        _statement(record).lstrip().upper().startswith("MERGE")


def test_a_merge_refused_for_a_concurrent_update_is_retried_and_loads_the_month_once(gcp_emulators, bq_proxy, bq, names, http_mirror):
    table = f"{PROJECT}.{names['dataset']}.green_tripdata"
    message = SERIALIZE.format(table=table)
    bq_proxy.fail_next(_is_merge_insert, 400, {"error": {
        "code": 400, "message": message, "status": "INVALID_ARGUMENT",
        "errors": [{"domain": "global", "reason": "invalidQuery", "message": message, "location": "q", "locationType": "parameter"}],
    }})
    start = len(bq_proxy.since(0))
    result = load_month(GREEN, APRIL, gcp_resources(http_mirror.url, **names))
    assert result.success
    merges = [r for r in bq_proxy.since(start) if _is_merge_insert(r)]
    assert [r.injected for r in merges] == ["failed", ""], [(r.injected, r.status) for r in merges]
    assert _counts(bq, names["dataset"]) == {"green_tripdata_2020-04.csv": (35_612, 35_612)}
    assert (_merge_meta(result)["inserted"], _merge_meta(result)["deleted"]) == (35_612, 0)


def test_a_merge_jobs_dml_statistics_give_its_counts(gcp_emulators, bq_proxy, bq, names, http_mirror):
    """local-bigquery reports no dmlStats; BigQuery does. With them (numbers the emulator could
    not have made up: the month's rows split 35,000 / 612), the merge reports BigQuery's counts."""
    def done_merge(record) -> bool:
        job = record.response if isinstance(record.response, dict) else {}
        query = job.get("configuration", {}).get("query", {}).get("query", "")
        return job.get("status", {}).get("state") == "DONE" and query.lstrip().upper().startswith("MERGE")

    def with_dml_stats(job: dict) -> dict:
        statistics = job.setdefault("statistics", {}).setdefault("query", {})
        statistics["dmlStats"] = {"insertedRowCount": "35000", "deletedRowCount": "612", "updatedRowCount": "0"}
        return job

    bq_proxy.rewrite_next(done_merge, with_dml_stats)
    start = len(bq_proxy.since(0))
    result = load_month(GREEN, APRIL, gcp_resources(http_mirror.url, **names))
    assert result.success
    assert [r.injected for r in bq_proxy.since(start) if r.injected] == ["rewritten"]
    assert (_merge_meta(result)["inserted"], _merge_meta(result)["deleted"]) == (35_000, 612)
    assert _counts(bq, names["dataset"]) == {"green_tripdata_2020-04.csv": (35_612, 35_612)}


def test_a_refused_move_after_the_merge_is_finished_by_the_next_run(gcp_emulators, gcs_proxy, bq, names, tmp_path):
    """GCS refuses the rewrite that moves the published month's file into place: BigQuery holds
    the new month, the bucket the old file, the new one waits as `merging`; the next run moves it."""
    root = tmp_path / "source"
    shutil.copytree(MIRROR, root)
    path = root / KEY
    with serve_folder(root) as server:
        resources = gcp_resources(server.url, **names)
        assert load_month(GREEN, APRIL, resources).success
        header, *rows = gzip.decompress(path.read_bytes()).split(b"\r\n")
        corrected = gzip.compress(b"\r\n".join([header, *rows[250:]]), mtime=0)
        path.write_bytes(corrected)

        def move_into_place(record) -> bool:
            return record.method == "POST" and "/rewriteTo/" in record.path and record.path.endswith(
                "/o/" + KEY.replace("/", "%2F"))

        gcs_proxy.fail_next(move_into_place, 403, {"error": {"code": 403, "message": "injected: permission denied"}})
        result = load_month(GREEN, APRIL, resources, raise_on_error=False)
        assert failure(result)[0] == "green_tripdata"
        assert _counts(bq, names["dataset"]) == {"green_tripdata_2020-04.csv": (35_362, 35_362)}
        bucket = storage.Client(project=PROJECT).bucket(names["bucket"])
        assert _md5(bucket.get_blob(KEY)) == md5((MIRROR / KEY).read_bytes())
        [waiting] = bucket.list_blobs(prefix="green/pending/")
        assert waiting.metadata["publication"] == "merging" and _md5(waiting) == md5(corrected)

        again = load_month(GREEN, APRIL, resources)
    assert again.success
    assert _md5(bucket.get_blob(KEY)) == md5(corrected) and list(bucket.list_blobs(prefix="green/pending/")) == []
    assert _counts(bq, names["dataset"]) == {"green_tripdata_2020-04.csv": (35_362, 35_362)}


def _md5(blob) -> str:
    return base64.b64decode(blob.md5_hash).hex()


def test_two_merges_of_a_colour_at_once_on_a_fresh_dataset_both_load_their_month(gcp_emulators, bq, names, http_mirror):
    """The merge's pool has one slot, but Dagster's claim of it on Postgres is not atomic
    (test_postgres.py's four-at-once test says why), and two small months of a first backfill
    reach their merges in the same instant: both find no main table and both create it.
    local-bigquery fails the second of two concurrent `CREATE TABLE IF NOT EXISTS` every time
    ("Failed to commit DuckLake transaction"; seen failing the deploy test's UI backfill once).
    The loser reads the table again, finds it complete, and merges its month: each month once."""
    months = {dt.date(2019, 1, 1): "green_tripdata_2019-01.csv", dt.date(2019, 10, 1): "green_tripdata_2019-10.csv"}
    warehouse = gcp_resources(http_mirror.url, **names)["target"].warehouse()
    # The bucket is the test's (its user agent keeps the create out of the request rules' check).
    own = storage.Client(project=PROJECT, client_info=ClientInfo(user_agent=TEST_AGENT))
    bucket = own.create_bucket(names["bucket"])
    raws = {month: RawFile(f"gs://{names['bucket']}/green/{name}.gz", name, "csv") for month, name in months.items()}
    for month, name in months.items():
        key = f"green/{name}.gz"
        bucket.blob(key).upload_from_filename(str(MIRROR / key))
        warehouse.stage(GREEN, month, raws[month])
    together = threading.Barrier(len(months))

    def merge(month: dt.date):
        together.wait()
        return warehouse.merge(GREEN, month, raws[month])

    with ThreadPoolExecutor(len(months)) as pool:
        results = list(pool.map(merge, months))
    assert [r.inserted for r in results] == [99, 1_308]
    assert _counts(bq, names["dataset"]) == {"green_tripdata_2019-01.csv": (99, 99),
                                             "green_tripdata_2019-10.csv": (1_308, 1_308)}


def test_the_first_months_of_a_backfill_create_the_missing_dataset_at_once_and_all_get_it(gcp_emulators, bq):
    """A backfill's first runs start together, and staging is in no pool: every one finds no
    dataset and creates it. BigQuery answers the later creates 409 (`exists_ok`); local-bigquery
    fails some with "Failed to commit DuckLake transaction" (the deploy test's UI backfill failed
    so in CI, in yellow 2020-01's staging; without the fix 7 of these 80 creates failed here). The
    losers read the dataset again and go on."""
    failed = []
    for _ in range(10):
        name = f"zoomcamp_race_{uuid.uuid4().hex[:8]}"
        together = threading.Barrier(8)

        def ensure(_, name=name, together=together):
            together.wait()
            try:
                return ensure_dataset(bq, PROJECT, name, None).dataset_id
            except Exception as exc:  # noqa: BLE001 -- collected, to say how many failed
                failed.append(exc)
                return None

        with ThreadPoolExecutor(8) as pool:
            got = list(pool.map(ensure, range(8)))
        assert not failed, f"{len(failed)} of 8 creates failed: {failed[0]}"
        assert got == [name] * 8


def test_a_merge_takes_the_table_staged_from_its_own_file_whatever_another_run_staged_since(
        gcp_emulators, bq, names, http_mirror, tmp_path):
    """Two runs of one month with different files (the source changed between their downloads):
    run A stages its file, run B stages its own, then A merges. Each staging table is named after
    its file's MD5, so A's merge takes A's rows, not B's (one shared name let B's staging replace
    A's table, and A then moved its own file into place over B's rows); B's merge then takes B's."""
    month, name = dt.date(2019, 10, 1), "green_tripdata_2019-10.csv"
    header, *rows = gzip.decompress((MIRROR / f"green/{name}.gz").read_bytes()).split(b"\r\n")
    bodies = {"A": gzip.compress(b"\r\n".join([header, *rows]), mtime=0),
              "B": gzip.compress(b"\r\n".join([header, *rows[300:]]), mtime=0)}
    warehouse = gcp_resources(http_mirror.url, **names)["target"].warehouse()
    own = storage.Client(project=PROJECT, client_info=ClientInfo(user_agent=TEST_AGENT))
    bucket = own.create_bucket(names["bucket"])
    raws = {}
    for run, body in bodies.items():
        key = f"green/pending/{run}/{name}.gz"
        bucket.blob(key).upload_from_string(body)
        raws[run] = RawFile(f"gs://{names['bucket']}/{key}", name, "csv", md5(body))
    staged = {run: warehouse.stage(GREEN, month, raws[run]).rows for run in ("A", "B")}
    moved = []
    merged_a = warehouse.merge(GREEN, month, raws["A"], lambda: moved.append("A"))
    assert (merged_a.month_rows, moved) == (staged["A"], ["A"])
    assert _counts(bq, names["dataset"])[name][0] == staged["A"]
    warehouse.merge(GREEN, month, raws["B"], lambda: moved.append("B"))
    assert _counts(bq, names["dataset"])[name][0] == staged["B"] == staged["A"] - 300
