"""The dbt project that builds the analytics models on the main tables: where it is, the profile it
runs with (made from the target's own settings: no profiles.yml for a user to write), and its
manifest, parsed again only when the project or the profile changed.

What dbt writes (the profile, each build's `target/` and logs) goes to a state folder of our own,
never into the project, which may be read-only (the bundled one, installed in site-packages).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

BUNDLED_PROJECT = Path(__file__).resolve().parents[2] / "analytics" / "dbt_project"
# dbt's own venv in a checkout (scripts/dbt-setup): dbt is not installed beside the pipeline, whose
# every process would pay for importing it; only the analytics step runs it, as a command.
DBT_VENV = Path(__file__).resolve().parents[3] / ".venv-dbt"
# The dbt target's name: the course's project keeps only one month under a target named `dev`.
TARGET_NAME = "prod"
_PROJECT_FILES = ("*.yml", "*.yaml", "*.sql", "*.csv", "*.md")


class AnalyticsProjectError(ValueError):
    """A dbt project the pipeline cannot build; the message is the line a user needs."""


def duckdb_profile(path: Path, schema: str, *, threads: int = 1, memory_limit: str = "1GB") -> dict:
    """dbt-duckdb's output for the embedded warehouse: the models go beside the main tables."""
    return {"type": "duckdb", "path": str(path.resolve()), "schema": schema, "threads": threads,
            "settings": {"memory_limit": memory_limit, "preserve_insertion_order": False}}


def bigquery_profile(project: str, dataset: str, location: str, api_endpoint: str | None = None) -> dict:
    """dbt-bigquery's output with Application Default Credentials (as the pipeline's own clients).
    With an emulator's endpoint, a placeholder token instead, as the pipeline's clients use
    anonymous credentials there (an emulator checks none)."""
    profile = {"type": "bigquery", "method": "oauth", "project": project, "dataset": dataset,
               "location": location, "threads": 4, "job_execution_timeout_seconds": 3600}
    if api_endpoint:
        profile |= {"api_endpoint": api_endpoint, "method": "oauth-secrets", "token": "emulator"}
    return profile


@dataclass(frozen=True)
class AnalyticsProject:
    """A dbt project and the state folder the pipeline keeps for it."""

    project_dir: Path
    state_dir: Path
    output: dict  # the profile's one output (duckdb_profile or bigquery_profile)
    dbt_executable: str = ""  # default: default_dbt_executable()

    @property
    def executable(self) -> str:
        return self.dbt_executable or default_dbt_executable()

    @property
    def bundled(self) -> bool:
        return self.project_dir.resolve() == BUNDLED_PROJECT

    @property
    def profiles_dir(self) -> Path:
        return self.state_dir / "profiles"

    def profile_name(self) -> str:
        config = self.project_dir / "dbt_project.yml"
        if not config.is_file():
            raise AnalyticsProjectError(
                f"TAXI_DBT_PROJECT_DIR={self.project_dir}: no dbt_project.yml there; point it at a dbt "
                "project's folder, or unset it for the bundled analytics models")
        return yaml.safe_load(config.read_text())["profile"]

    def check_packages(self) -> None:
        """A project with packages needs them in its dbt_packages/ (dbt's package hub is not asked:
        a machine may be offline)."""
        wants = any((self.project_dir / name).exists() for name in ("packages.yml", "dependencies.yml"))
        if wants and not any((self.project_dir / "dbt_packages").glob("*/dbt_project.yml")):
            raise AnalyticsProjectError(
                f"dbt project {self.project_dir} lists packages (packages.yml) but has none in dbt_packages/: "
                f"run `dbt deps` in {self.project_dir} once where the package hub is reachable")

    def environment(self) -> dict[str, str]:
        """The variables dbt runs with: its logs in our state folder, no telemetry, no version check."""
        return {**os.environ, "DBT_LOG_PATH": str(self.state_dir / "logs"), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
                "DBT_VERSION_CHECK": "false", "DBT_PROFILES_DIR": str(self.profiles_dir)}

    def profile_text(self) -> str:
        profile = {self.profile_name(): {"target": TARGET_NAME, "outputs": {TARGET_NAME: self.output}}}
        return yaml.safe_dump(profile, sort_keys=True)

    def write_profile(self) -> None:
        """The profile dbt runs with, in the state folder: written when dbt is about to run, never
        while the definitions load (a load writes nothing under TAXI_HOME)."""
        profiles, text = self.profiles_dir / "profiles.yml", self.profile_text()
        if not profiles.exists() or profiles.read_text() != text:
            _write_atomically(profiles, text)

    def prepare(self) -> Path:
        """The project's manifest, parsed again only when the project or what the parse depends on
        changed. Manifests are kept per machine in a cache (by a digest of the project's files and
        the profile), so a new TAXI_HOME does not pay a parse. Safe when several processes load the
        definitions at once: each parses into a folder of its own and moves the manifest into place
        in one rename."""
        self.check_packages()
        manifest = _cache_root(self.state_dir / "manifests") / self._digest() / "manifest.json"
        if manifest.exists():
            return manifest
        manifest.parent.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix="parse-", dir=manifest.parent))
        try:
            # dbt parse reads a profile but connects to nothing: one in the scratch folder will do.
            (scratch / "profiles.yml").write_text(self.profile_text())
            done = subprocess.run(
                [self.executable, "parse", "--quiet", "--project-dir", str(self.project_dir),
                 "--profiles-dir", str(scratch), "--target-path", str(scratch / "target"), "--no-partial-parse"],
                env={**self.environment(), "DBT_LOG_PATH": str(scratch / "logs")},
                capture_output=True, text=True, check=False)
            if done.returncode != 0:
                detail = (done.stdout + done.stderr).strip().splitlines()
                raise AnalyticsProjectError(
                    f"dbt project {self.project_dir} does not parse: {' '.join(detail[-3:]) or 'no output'}")
            os.replace(scratch / "target" / "manifest.json", manifest)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return manifest

    def compile(self, out: Path, select: tuple[str, ...] = (), variables: dict | None = None) -> dict[str, str]:
        """The compiled SQL of the models `select` names (default all), by model name, as a build
        with these `--vars` would run them. dbt asks the warehouse which models exist already."""
        self.write_profile()
        done = subprocess.run(
            [self.executable, "compile", "--quiet", "--project-dir", str(self.project_dir), "--profiles-dir",
             str(self.profiles_dir), "--target-path", str(out), "--vars", json.dumps(variables or {}),
             *(["--select", *select] if select else [])],
            env=self.environment(), capture_output=True, text=True, check=False)
        if done.returncode != 0:
            detail = (done.stdout + done.stderr).strip().splitlines()
            raise AnalyticsProjectError(f"dbt compile of {self.project_dir} failed: {' '.join(detail[-3:])}")
        return {path.stem: path.read_text() for path in (out / "compiled").rglob("models/**/*.sql")}

    def _digest(self) -> str:
        """What the manifest depends on: the project's files (names, sizes, times), dbt's version and
        the profile, in which only the DuckDB file's name (the database's name) counts, not its folder."""
        output = dict(self.output)
        if "path" in output:
            output["path"] = Path(output["path"]).stem
        digest = hashlib.md5(f"{self.project_dir}\n{self.executable}\n{sorted(output.items())}\n".encode())
        for pattern in _PROJECT_FILES:
            for path in sorted(self.project_dir.rglob(pattern)):
                if not {"target", "logs"} & set(path.relative_to(self.project_dir).parts):
                    stat = path.stat()
                    digest.update(f"{path}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
        return digest.hexdigest()


def project_for(output: dict, env: Mapping[str, str] = os.environ) -> AnalyticsProject | None:
    """The dbt project to build (`TAXI_DBT_PROJECT_DIR`, default the bundled one) with a target's
    profile `output`; None where dbt has no adapter for that target (dbt-bigquery:
    docs/analytics.md). Not an error: the loads need no dbt, and `preflight` says how to add it."""
    executable = env.get("TAXI_DBT_EXECUTABLE", "")
    if not executable and not has_adapter(default_dbt_executable(), output["type"]):
        return None
    project_dir = Path(env.get("TAXI_DBT_PROJECT_DIR") or BUNDLED_PROJECT).resolve()
    tag = hashlib.md5(str(project_dir).encode()).hexdigest()[:8]
    state_dir = Path(env.get("TAXI_HOME", ".taxi")).resolve() / "dbt" / f"{project_dir.name}-{tag}"
    return AnalyticsProject(project_dir, state_dir, output, executable)


def default_dbt_executable() -> str:
    """The checkout's dbt venv (scripts/dbt-setup), else a dbt beside this Python (one installed into
    the pipeline's own venv), else the `dbt` on the PATH. No venv needs to be activated."""
    for candidate in (DBT_VENV / "bin" / "dbt", Path(sys.executable).parent / "dbt"):
        if candidate.exists():
            return str(candidate)
    return "dbt"


def has_adapter(executable: str, adapter: str) -> bool:
    """Whether the venv of this dbt has the adapter (`duckdb`, `bigquery`), found on disk: asking dbt
    itself would start a Python at every load of the definitions. A dbt outside a venv is trusted."""
    found = shutil.which(executable)
    if found is None:
        return False
    venv = Path(found).resolve().parent.parent  # through a link to a venv's dbt (the image's)
    if not (venv / "pyvenv.cfg").is_file():
        return True
    return any(venv.glob(f"lib/python3*/site-packages/dbt/adapters/{adapter}/__init__.py"))


def _cache_root(fallback: Path) -> Path:
    """The user's cache folder, or `fallback` where there is none to write (a container's user
    without a home)."""
    try:
        root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "taxi_pipeline" / "dbt-manifests"
        root.mkdir(parents=True, exist_ok=True)
    except (OSError, RuntimeError):  # RuntimeError: Path.home() with no HOME and no passwd entry
        return fallback
    return root if os.access(root, os.W_OK) else fallback


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_name(f".{path.name}.{os.getpid()}")
    scratch.write_text(text)
    os.replace(scratch, path)
