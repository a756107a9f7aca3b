"""Is the live main table this project's? Compares it with the layout the pipeline writes.

A table of another shape, typically the one the course's Kestra flow made (`unique_row_id BYTES`,
partitioned by pickup date, no `file_month`), must never be written to: a merge would fail half-way
or, worse, mix two kinds of ids. The warehouses refuse such a table before any write (`require_ours`);
the CLI's `adopt` converts it. Columns the TLC added later (`in_csv=False`) may be missing from a
table that is otherwise ours: the warehouse adds them in place, so they are "to add", not foreign.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from taxi_pipeline.lib.colours import Colour, Column, LogicalType

ADOPT_COMMAND = "python -m taxi_pipeline adopt {colour}"


class ForeignTableError(RuntimeError):
    """The main table is not this project's layout; nothing was written to it."""


@dataclass(frozen=True)
class Shape:
    """A table's columns (name -> dialect type, in order) and, on BigQuery, its layout."""

    columns: dict[str, str]
    partitioning: str | None = None  # e.g. "DAY(file_month)"; None where the dialect has none
    clustering: tuple[str, ...] = ()


@dataclass(frozen=True)
class ShapeReport:
    table: str
    live: Shape
    differences: tuple[str, ...]
    to_add: tuple[Column, ...] = field(default=())

    @property
    def is_ours(self) -> bool:
        return not self.differences

    @property
    def looks_like_kestra(self) -> bool:
        """Kestra's table: 16-byte MD5 ids (as ours are on BigQuery) and no `file_month`."""
        names = {name.lower() for name in self.live.columns}
        id_type = _normal(self.live.columns.get("unique_row_id", ""))
        return id_type in {"BYTES", "BLOB"} and "file_month" not in names and "unique_row_id" in names

    @property
    def has_hex_ids(self) -> bool:
        """This project's earlier layout kept the id as 32 hex characters."""
        return _normal(self.live.columns.get("unique_row_id", "")) in {"STRING", "VARCHAR"}


def expected_columns(
    colour: Colour, types: dict[LogicalType, str], id_type: str, *, trailing: dict[str, str] | None = None,
) -> dict[str, str]:
    """`unique_row_id`, `filename`, the colour's columns in `types`' dialect, then `trailing` ones."""
    columns = {"unique_row_id": id_type, "filename": types[LogicalType.STRING]}
    columns.update({c.name: types[c.type] for c in colour.columns})
    columns.update(trailing or {})
    return columns


def compare(table: str, colour: Colour, live: Shape, expected: Shape, *, partitioning: bool) -> ShapeReport:
    """The differences of `live` from `expected`; `partitioning` also compares partitioning and clustering."""
    optional = {c.name.lower(): c for c in colour.columns if not c.in_csv}
    live_columns = {name.lower(): (name, kind) for name, kind in live.columns.items()}
    differences, to_add = [], []
    for name, kind in expected.columns.items():
        if name.lower() not in live_columns:
            if name.lower() in optional:
                to_add.append(optional[name.lower()])
            else:
                differences.append(f"column {name} {kind} is missing")
        elif _normal(live_columns[name.lower()][1]) != _normal(kind):
            differences.append(f"column {name} is {live_columns[name.lower()][1]}, expected {kind}")
    expected_names = {name.lower() for name in expected.columns}
    differences += [
        f"column {name} {kind} is not one of this project's"
        for key, (name, kind) in live_columns.items() if key not in expected_names
    ]
    if partitioning:
        differences += _layout_differences(live, expected)
    return ShapeReport(table, live, tuple(differences), tuple(to_add))


def _layout_differences(live: Shape, expected: Shape) -> list[str]:
    differences = []
    if live.partitioning != expected.partitioning:
        now = f"partitioned by {live.partitioning}" if live.partitioning else "not partitioned"
        differences.append(f"{now}, expected PARTITION BY {expected.partitioning}")
    if tuple(c.lower() for c in live.clustering) != tuple(c.lower() for c in expected.clustering):
        now = f"clustered by {', '.join(live.clustering)}" if live.clustering else "not clustered"
        differences.append(f"{now}, expected CLUSTER BY {', '.join(expected.clustering)}")
    return differences


def foreign_table_message(colour: Colour, report: ShapeReport) -> str:
    """Names the table, what differs, and the two ways out."""
    first = f"{report.table} is not this project's {colour.name} main table, so nothing was written to it:"
    lines = [first]
    lines += [f"  - {difference}" for difference in report.differences]
    if report.looks_like_kestra:
        lines.append("It looks like the table the course's Kestra flow made (its ids are 16-byte MD5s).")
    elif report.has_hex_ids:
        lines.append("It looks like this project's earlier layout, whose ids were 32 hex characters.")
    lines += [
        "Two ways out:",
        (f"  1. keep its rows: `{ADOPT_COMMAND.format(colour=colour.name)}` converts it to "
         "this project's layout; the next load of each month then replaces that month's rows "
         "with this project's;"),
        ("  2. or leave it as it is: set TAXI_DATASET to another dataset, where the pipeline "
         "creates its own tables."),
    ]
    return "\n".join(lines)


def require_ours(colour: Colour, report: ShapeReport | None) -> ShapeReport | None:
    """`report` if the table is missing or this project's; else `ForeignTableError`."""
    if report is not None and not report.is_ours:
        raise ForeignTableError(foreign_table_message(colour, report))
    return report


def _normal(kind: str) -> str:
    """`DECIMAL(38, 9)` and `decimal(38,9)` are the same type."""
    return "".join(kind.split()).upper()


# What `adopt` shares across dialects: which column comes from where, and what it reports.


class AdoptError(RuntimeError):
    """`adopt` cannot convert the table without losing something; nothing was changed."""


@dataclass(frozen=True)
class Conversion:
    """How one column of this project's layout is filled from the live table."""

    column: str
    kind: str  # this project's type
    source: str | None  # the live column, as the table spells it; None: the column is new
    source_kind: str | None

    def describe(self) -> str | None:
        if self.source is None:
            return f"{self.column}: added, {self.kind}, NULL in the adopted rows"
        if _normal(self.source_kind or "") == _normal(self.kind):
            return None
        if self.column == "unique_row_id":
            return f"{self.column}: {self.source_kind} -> {self.kind} (the same MD5, as this project's 16-byte id)"
        return f"{self.column}: {self.source_kind} -> {self.kind}"


def plan_conversions(
    report: ShapeReport, expected: Shape, *, derived: tuple[str, ...] = (),
) -> list[Conversion]:
    """One conversion per column of `expected`, or `AdoptError` if a value would be lost.

    `derived` columns are computed from others by the dialect (BigQuery's `file_month`), so they
    need no source column.
    """
    live = {name.lower(): (name, kind) for name, kind in report.live.columns.items()}
    expected_names = {name.lower() for name in expected.columns}
    problems = [f"column {name} {kind} has no place in this project's layout"
                for key, (name, kind) in live.items() if key not in expected_names]
    problems += [f"column {name} is missing" for name in ("unique_row_id", "filename") if name not in live]
    if problems:
        raise AdoptError(
            f"{report.table} cannot be adopted without losing data: " + "; ".join(problems)
            + ". Move those values elsewhere first, or set TAXI_DATASET to another dataset."
        )
    return [
        Conversion(name, kind, *(live.get(name.lower()) or (None, None)))
        for name, kind in expected.columns.items() if name not in derived
    ]


@dataclass(frozen=True)
class AdoptResult:
    table: str
    files: tuple[tuple[str, int], ...]  # rows per `filename`, equal before and after
    changes: tuple[str, ...]  # what was converted; empty if the table was already this project's
    backup: str | None = None  # the old table, where it was kept

    @property
    def rows(self) -> int:
        return sum(count for _, count in self.files)
