"""One benchmark run: the floor, our month end to end, 2x the rows, a TLC Parquet month against
DuckDB's own Parquet load, the dlt peer, merge growth, and the disk each takes.

    .venv/bin/python -m benchmarks.bench                 # a realistic yellow month (7,667,792 rows)
    .venv/bin/python -m benchmarks.bench --rows 3000 --parquet-rows 2000 --months 3 --out /tmp/b   # smoke test

Everything is offline: the month is built from the bundled real rows and served from a loopback
HTTP server. Each measured step runs as its own process; ratios are to the floor of the same run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb

from benchmarks.make_month import make_month, make_parquet_month
from benchmarks.monitor import Measurement, measure
from taxi_pipeline_tests.helpers.servers import serve_folder

ROOT = Path(__file__).parents[1]
BIN = Path(sys.executable).parent
MEMORY_LIMIT = "500MB"  # the pipeline's default DuckDB memory_limit, given to the floor too
# Dagster writes a step's duration as 533ms, 5.6s or 4m52s (dagster_shared.utils.timing.format_duration).
_STEP_TIME = re.compile(r'Finished execution of step "(\w+)" in (?:(\d+)m)?([\d.]+)(ms|s)')


def _ours(month: str, mirror_url: str, work: Path, name: str) -> Measurement:
    home, dagster_home = work / name / "home", work / name / "dagster"
    env = {**os.environ, "TAXI_HOME": str(home), "TAXI_SOURCE_URL": mirror_url, "TAXI_TLC_URL": f"{mirror_url}/tlc",
           "DAGSTER_HOME": str(dagster_home)}
    if not dagster_home.exists():
        # The instance a user runs: the project's dagster.yaml, its storage made before the first
        # month (untimed: a fresh instance's SQLite schemas cost ~1 s once, not per month).
        dagster_home.mkdir(parents=True)
        shutil.copy(ROOT / "dagster.yaml", dagster_home / "dagster.yaml")
        subprocess.run([str(BIN / "dagster"), "instance", "migrate"], env=env, check=True, capture_output=True)
    command = [str(BIN / "dagster"), "job", "execute", "-m", "taxi_pipeline.definitions", "-j", "yellow_taxi_job",
               "--tags", json.dumps({"dagster/partition": month})]
    result = measure(command, env, [work / name], cwd=ROOT)
    if "RUN_SUCCESS" not in result.output:
        raise RuntimeError(result.output[-4000:])
    return result


def used_bytes(database: Path) -> int:
    """Bytes of the blocks a DuckDB file uses (free blocks of dropped tables do not count)."""
    with duckdb.connect(str(database), read_only=True) as con:
        [(used,)] = con.execute("SELECT used_blocks * block_size FROM pragma_database_size()").fetchall()
    return used


def _folder_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and not p.name.endswith(".meta.json"))


def _python(script: str, args: list[str], work: Path, name: str) -> Measurement:
    (work / name).mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return measure([sys.executable, str(ROOT / "benchmarks" / script), *args], env, [work / name], cwd=ROOT)


def run(rows: int, parquet_rows: int, months: int, out: Path, work: Path, double: bool, dlt: bool,
        cache: Path | None = None) -> dict:
    shutil.rmtree(work, ignore_errors=True)
    load_at_start = " ".join(f"{x:.1f}" for x in os.getloadavg())  # other work on the machine inflates wall times
    mirror = work / "mirror"
    month_file = make_month(mirror / "yellow" / "yellow_tripdata_2019-01.csv.gz", rows, cache=cache)
    if double:
        make_month(mirror / "yellow" / "yellow_tripdata_2019-02.csv.gz", 2 * rows, seed=43, cache=cache)
    # A TLC month (2025-02, era C types) from the first rows of the built month.
    parquet_file = make_parquet_month(month_file, mirror / "tlc" / "yellow_tripdata_2025-02.parquet", parquet_rows)
    results: dict[str, Measurement] = {}
    floor_args = [str(month_file), str(work / "floor" / "f.duckdb"), MEMORY_LIMIT]
    with serve_folder(mirror) as server:
        print(f"month: {rows:,} rows, {month_file.stat().st_size / 2**20:,.0f} MiB gzip", flush=True)
        results["floor"] = _python("floor.py", floor_args, work, "floor")
        ids_args = [str(month_file), str(work / "floor_ids" / "f.duckdb"), MEMORY_LIMIT, "--ids"]
        results["floor_with_ids"] = _python("floor.py", ids_args, work, "floor_ids")
        results["ours"] = _ours("2019-01-01", server.url, work, "ours")
        disk = {
            "floor_table_mb": round(used_bytes(work / "floor" / "f.duckdb") / 2**20, 1),
            "ours_warehouse_mb": round(used_bytes(work / "ours" / "home" / "warehouse.duckdb") / 2**20, 1),
            "ours_bucket_mb": round(_folder_bytes(work / "ours" / "home" / "bucket") / 2**20, 1),
        }
        # The same month again, as an overlapping backfill would: same file, nothing new.
        results["ours_rerun"] = _ours("2019-01-01", server.url, work, "ours")
        if double:
            results["ours_2x_rows"] = _ours("2019-02-01", server.url, work, "ours_2x")
        parquet_floor_args = [str(parquet_file), str(work / "floor_parquet" / "f.duckdb"), MEMORY_LIMIT, "--parquet"]
        results["floor_parquet"] = _python("floor.py", parquet_floor_args, work, "floor_parquet")
        parquet_ids_args = [str(parquet_file), str(work / "floor_ids_parquet" / "f.duckdb"), MEMORY_LIMIT, "--parquet-ids"]
        results["floor_with_ids_parquet"] = _python("floor.py", parquet_ids_args, work, "floor_ids_parquet")
        results["ours_parquet"] = _ours("2025-02-01", server.url, work, "ours_parquet")
        # The month again, nothing to load: what a run costs before any of its work (Dagster's
        # start-up, the instance, the events; the steps find the month loaded).
        results["ours_parquet_rerun"] = _ours("2025-02-01", server.url, work, "ours_parquet")
    if dlt:
        for mode, name in (("documented", "dlt_merge"), ("arrow", "dlt_merge_arrow")):
            dlt_args = [str(month_file), str(work / name / "d.duckdb"), str(work / name), mode]
            results[name] = _python("dlt_peer.py", dlt_args, work, name)
    growth = _python("merge_growth.py", [str(month_file), str(work / "growth" / "g.duckdb"), str(months), MEMORY_LIMIT],
                     work, "growth")
    merges = json.loads(growth.output.strip().splitlines()[-1])
    report = _report(rows, parquet_rows, month_file, results, merges, disk)
    report["load"] = f"{load_at_start} -> {' '.join(f'{x:.1f}' for x in os.getloadavg())}"
    _write(report, out)
    return report


def step_seconds(job_output: str) -> dict[str, float]:
    """Each step's duration as the run's own log reports it."""
    return {step: round(60 * int(minutes or 0) + float(n) / (1000 if unit == "ms" else 1), 2)
            for step, minutes, n, unit in _STEP_TIME.findall(job_output)}


def _report(
    rows: int, parquet_rows: int, month_file: Path, results: dict[str, Measurement], merges: list[dict], disk: dict,
) -> dict:
    floor = results["floor"]
    steps = {
        name: {"wall_s": m.wall_s, "cpu_s": m.cpu_s, "peak_rss_mb": m.peak_rss_mb,
               "disk_high_water_mb": m.disk_high_water_mb, "wall_x_floor": round(m.wall_s / floor.wall_s, 2),
               "cpu_x_floor": round(m.cpu_s / max(floor.cpu_s, 0.01), 2),
               "rss_x_floor": round(m.peak_rss_mb / floor.peak_rss_mb, 2),
               "disk_x_floor": round(m.disk_high_water_mb / max(floor.disk_high_water_mb, 0.1), 2)}
        for name, m in results.items()
    }
    ours = results["ours"]
    job_steps = step_seconds(ours.output)
    job_steps["dagster_start_and_bookkeeping"] = round(ours.wall_s - sum(job_steps.values()), 2)
    parquet, parquet_floor = results["ours_parquet"], results["floor_parquet"]
    parquet_steps = step_seconds(parquet.output)
    parquet_steps["dagster_start_and_bookkeeping"] = round(parquet.wall_s - sum(parquet_steps.values()), 2)
    first, last = merges[0], merges[-1]
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "month": {"rows": rows, "gzip_mb": round(month_file.stat().st_size / 2**20, 1), "parquet_rows": parquet_rows},
        "steps": steps,
        "disk": disk,
        "ours_step_s": job_steps,
        "ours_parquet_step_s": parquet_steps,
        "ratios": {
            "ours_vs_floor_wall": steps["ours"]["wall_x_floor"],
            "ours_rerun_vs_ours_wall": round(results["ours_rerun"].wall_s / ours.wall_s, 2),
            "floor_with_ids_vs_floor_wall": steps["floor_with_ids"]["wall_x_floor"],
            "ours_vs_floor_with_ids_wall": round(ours.wall_s / results["floor_with_ids"].wall_s, 2),
            "warehouse_vs_floor_bytes": round(disk["ours_warehouse_mb"] / disk["floor_table_mb"], 2),
            "ours_parquet_vs_floor_parquet_wall": round(parquet.wall_s / parquet_floor.wall_s, 2),
            "ours_parquet_vs_floor_parquet_cpu": round(parquet.cpu_s / parquet_floor.cpu_s, 2),
            # The step as the run's log times it, against the floor's whole process.
            "parquet_staging_step_vs_floor_parquet_wall": round(parquet_steps.get("yellow_staging", 0) / parquet_floor.wall_s, 2),
            "floor_with_ids_parquet_vs_floor_parquet_wall": round(
                results["floor_with_ids_parquet"].wall_s / parquet_floor.wall_s, 2),
            # A run that loads nothing, and what the month's own work adds to it.
            "ours_parquet_rerun_vs_floor_parquet_wall": round(results["ours_parquet_rerun"].wall_s / parquet_floor.wall_s, 2),
            "ours_parquet_less_rerun_vs_floor_parquet_wall": round(
                (parquet.wall_s - results["ours_parquet_rerun"].wall_s) / parquet_floor.wall_s, 2),
            "ours_vs_floor_cpu": steps["ours"]["cpu_x_floor"],
            **({"dlt_vs_ours_wall": round(results["dlt_merge"].wall_s / ours.wall_s, 2),
                "dlt_arrow_vs_ours_wall": round(results["dlt_merge_arrow"].wall_s / ours.wall_s, 2)}
               if "dlt_merge" in results else {}),
            "merge_last_vs_first": round(last["merge_s"] / first["merge_s"], 2),
            "rerun_merge_last_vs_first": round(last["rerun_s"] / first["rerun_s"], 2),
            **({"rss_2x_rows_vs_1x": round(steps["ours_2x_rows"]["peak_rss_mb"] / steps["ours"]["peak_rss_mb"], 2)}
               if "ours_2x_rows" in steps else {}),
        },
        "merges": merges,
    }


def _write(report: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        f"# Benchmark, {report['date']}", "",
        (f"{report['month']['rows']:,} rows ({report['month']['gzip_mb']} MiB gzip), "
         f"{report['machine']['cpus']} cores, Python {report['machine']['python']}."), "",
        f"Load average at the start and the end: {report.get('load', '')}.", "",
        "| step | wall s | x floor | CPU s | x floor | peak RSS MiB | x floor | disk high-water MiB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, s in report["steps"].items():
        lines.append(f"| {name} | {s['wall_s']} | {s['wall_x_floor']} | {s['cpu_s']} | {s['cpu_x_floor']} "
                     f"| {s['peak_rss_mb']} | {s['rss_x_floor']} | {s['disk_high_water_mb']} |")
    lines += ["", "| disk after one month | MiB |", "|---|---:|"]
    lines += [f"| {k} | {v} |" for k, v in report["disk"].items()]
    lines += ["", "| ratio | value |", "|---|---:|"]
    lines += [f"| {k} | {v} |" for k, v in report["ratios"].items()]
    lines += ["", "Where `ours` spends its time (step durations from the run's log):", "",
              "| step | s |", "|---|---:|"]
    lines += [f"| {k} | {v} |" for k, v in report["ours_step_s"].items()]
    lines += ["", "Where `ours_parquet` spends its time:", "", "| step | s |", "|---|---:|"]
    lines += [f"| {k} | {v} |" for k, v in report["ours_parquet_step_s"].items()]
    lines += ["", "Merge of each month into the growing main table (first load; re-run of the first and last):",
              "", "| month | merge s | re-run s | table rows |", "|---|---:|---:|---:|"]
    lines += [f"| {m['month']} | {m['merge_s']} | {m.get('rerun_s', '')} | {m['table_rows']:,} |"
              for m in report["merges"]]
    (out / "results.md").write_text("\n".join(lines) + "\n")
    _chart(report, out / "results.png")


def _chart(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = report["steps"]
    fig, (wall, rss, growth) = plt.subplots(1, 3, figsize=(15, 4.5))
    names = list(steps)
    bars = wall.bar(names, [steps[n]["wall_s"] for n in names], color="#4c72b0")
    wall.bar_label(bars, labels=[f"{steps[n]['wall_x_floor']}x" for n in names], fontsize=8)
    wall.set_yscale("log")  # the slowest peer is ~40x the floor; a log axis keeps the fast ones readable
    wall.set_title("wall time (s, log scale; labels: x floor)")
    bars = rss.bar(names, [steps[n]["peak_rss_mb"] for n in names], color="#dd8452")
    rss.bar_label(bars, fmt="%.0f", fontsize=8)
    rss.axhline(1024, color="red", linestyle="--", linewidth=1, label="1 GiB")
    rss.set_title("peak RSS of the process tree (MiB)")
    rss.legend()
    merges = report["merges"]
    growth.plot([m["month"] for m in merges], [m["merge_s"] for m in merges], marker="o", label="first load")
    reruns = [m for m in merges if "rerun_s" in m]
    growth.plot([m["month"] for m in reruns], [m["rerun_s"] for m in reruns], marker="s", linestyle="",
                label="re-run")
    growth.legend()
    growth.set_ylim(bottom=0)
    growth.set_title("merge time as the main table grows (s)")
    for axis in (wall, rss, growth):
        axis.tick_params(axis="x", rotation=30)
    fig.suptitle(f"yellow month, {report['month']['rows']:,} rows")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=7_667_792, help="rows of the month (yellow 2019-01 has 7,667,792)")
    parser.add_argument("--parquet-rows", type=int, default=3_500_000,
                        help="rows of the TLC Parquet month (yellow 2025-01 has 3,475,226)")
    parser.add_argument("--months", type=int, default=12, help="months merged into the growing main table")
    parser.add_argument("--no-double", action="store_true", help="skip the 2x-rows memory run")
    parser.add_argument("--no-dlt", action="store_true", help="skip the dlt peer (about 5 minutes)")
    parser.add_argument("--cache", type=Path, default=None,
                        help="keep the built months here and reuse them (same rows and seed: same bytes)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "work")
    args = parser.parse_args()
    run(args.rows, args.parquet_rows, args.months, args.out, args.work, double=not args.no_double, dlt=not args.no_dlt,
        cache=args.cache)
    print((args.out / "results.md").read_text())
    shutil.rmtree(args.work, ignore_errors=True)


if __name__ == "__main__":
    main()
