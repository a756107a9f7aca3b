"""NYC taxi trip records, loaded month by month into a warehouse by Dagster."""
