"""Plain Python with no Dagster imports: colour specs, the source, the object stores, the warehouses."""
