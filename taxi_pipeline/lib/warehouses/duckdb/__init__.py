"""DuckDB: the embedded warehouse (one file, one writer process), its SQL and its admin commands."""
