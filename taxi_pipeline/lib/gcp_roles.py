"""The least-privilege roles the GCP target needs, and the permissions each grants that it uses.

One table for the README, `preflight` (which names the role that grants a missing permission) and
the tests (which check that every API call the pipeline makes needs only these permissions).
Permissions per role: https://cloud.google.com/iam/docs/roles-permissions/storage and
https://cloud.google.com/iam/docs/roles-permissions/bigquery (only the ones this project uses are
listed; the roles grant more).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Role:
    name: str
    title: str
    granted_on: str  # where a user grants it: "the bucket", "the dataset", "the project"
    permissions: frozenset[str]
    why: str


ROLES: tuple[Role, ...] = (
    Role(
        "roles/storage.objectAdmin", "Storage Object Admin", "the bucket",
        frozenset({"storage.objects.create", "storage.objects.delete", "storage.objects.get",
                   "storage.objects.list", "storage.objects.update"}),
        "write, read, replace and remove the months' objects",
    ),
    Role(
        # Object Admin has no storage.buckets.get, which BigQuery's load from GCS requires:
        # https://cloud.google.com/bigquery/docs/loading-data-cloud-storage-csv#required_permissions
        "roles/storage.legacyBucketReader", "Storage Legacy Bucket Reader", "the bucket",
        frozenset({"storage.buckets.get", "storage.objects.list"}),
        "BigQuery's load jobs read the bucket's metadata (storage.buckets.get)",
    ),
    Role(
        "roles/bigquery.dataEditor", "BigQuery Data Editor", "the dataset",
        frozenset({"bigquery.datasets.get", "bigquery.tables.create", "bigquery.tables.delete",
                   "bigquery.tables.get", "bigquery.tables.getData", "bigquery.tables.list",
                   "bigquery.tables.update", "bigquery.tables.updateData"}),
        "create, load, merge into and drop the colour's tables",
    ),
    Role(
        "roles/bigquery.jobUser", "BigQuery Job User", "the project",
        frozenset({"bigquery.jobs.create"}),
        "run load and query jobs",
    ),
)

# Only to create the bucket or the dataset on first use; a team that creates them beforehand
# (as a least-privilege setup does) never needs these.
CREATE_ROLES: tuple[Role, ...] = (
    Role("roles/storage.admin", "Storage Admin", "the project", frozenset({"storage.buckets.create"}),
         "create the bucket on first use"),
    Role("roles/bigquery.dataEditor", "BigQuery Data Editor", "the project", frozenset({"bigquery.datasets.create"}),
         "create the dataset on first use"),
)

BUCKET_PERMISSIONS = frozenset(p for r in ROLES for p in r.permissions if p.startswith("storage."))


def granted() -> frozenset[str]:
    """Every permission the least-privilege roles grant that this project uses."""
    return frozenset(p for role in ROLES for p in role.permissions)


def role_granting(permission: str) -> Role | None:
    """The least-privilege role (or, failing that, the creating one) that grants `permission`."""
    return next((r for r in (*ROLES, *CREATE_ROLES) if permission in r.permissions), None)
