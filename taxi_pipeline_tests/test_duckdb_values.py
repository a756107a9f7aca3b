"""The DuckDB expressions that type and spell a Parquet value, evaluated by a real DuckDB over
millions of doubles: the fast canonical text of a money value gives the general one's bytes, and
no NULL ever reaches error()."""

from __future__ import annotations

import duckdb
import pytest

from taxi_pipeline.lib.colours import GREEN, LogicalType
from taxi_pipeline.lib.raw_file import FileColumn
from taxi_pipeline.lib.warehouses.duckdb import sql

# Doubles as the TLC writes money (cents, whole dollars), every number of decimals up to 10, all
# magnitudes from 1e-12 to 1e12, the halfway points of the ninth decimal, and the edges.
DOUBLES = """
    SELECT (i - 500000) / 100.0 AS x FROM range(1000000) t(i)
    UNION ALL SELECT round((random() - 0.5) * pow(10, random() * 8), CAST(random() * 10 AS INTEGER)) FROM range(1000000)
    UNION ALL SELECT (random() - 0.5) * pow(10, random() * 24 - 12) FROM range(1000000)
    UNION ALL SELECT (2 * i + 1) / 2e9 * pow(10, i % 9) FROM range(1000000) t(i)
    UNION ALL SELECT x FROM (VALUES (0.0), (-0.0), (1e-4), (-1e-4), (9.99e-5), (1e6), (-1e6), (1e6 + 0.5), (999999.999999999),
        (0.000123456789), (5e-10), (-5e-10), (1.5e-9), (123.4567890125), (2.675), (1e15), (NULL)) v(x)
"""


def test_the_fast_text_of_a_money_double_is_the_canonical_text_of_its_decimal():
    fast = sql.numeric_text("x")
    general = sql.canonical_text(LogicalType.NUMERIC, "CAST(x AS DECIMAL(38, 9))")
    with duckdb.connect() as con:
        con.execute("SELECT setseed(0.19)")
        [(values, differ, fast_way)] = con.execute(
            f"SELECT count(*), count(*) FILTER (WHERE {fast} IS DISTINCT FROM {general}), "
            f"count(*) FILTER (WHERE abs(x) BETWEEN 1e-4 AND 1e6) FROM ({DOUBLES})"
        ).fetchall()
    assert differ == 0 and values == 4_000_017
    assert fast_way > 3_000_000  # most values take the fast way, so it is the one tested


@pytest.mark.parametrize(("name", "expected"), [("payment_type", [1, None, 4]), ("RatecodeID", ["1", None, "4"])])
def test_a_null_double_code_is_null_without_reaching_error(name, expected):
    """A code the file stores as a double (INTEGER and STRING columns). DuckDB's error(NULL)
    returns NULL, so a NULL reaching error() would pass unseen here (and fail in BigQuery):
    error() is replaced by a function that fails whatever it is given."""
    column = next(c for c in GREEN.columns if c.name == name)
    expression = sql.typed_value(column, FileColumn(name, "code", "float"))
    assert "error(" in expression

    def reached(message):
        raise AssertionError(f"error() reached with {message!r}")

    with duckdb.connect() as con:
        con.create_function("strict_error", reached, ["VARCHAR"], "BIGINT", null_handling="special")
        strict = expression.replace("error(", "strict_error(")
        values = con.execute(f"SELECT {strict} FROM (VALUES (1.0), (NULL), (4.0)) v(code)").fetchall()
        assert [v for (v,) in values] == expected
        with pytest.raises(duckdb.Error, match="1.5 is not a whole number"):
            con.execute(f"SELECT {expression} FROM (VALUES (1.5)) v(code)").fetchall()
