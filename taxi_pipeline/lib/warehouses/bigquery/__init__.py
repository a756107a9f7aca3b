"""BigQuery: the production warehouse, its SQL and its admin commands."""
