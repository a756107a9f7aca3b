"""Dagster objects: partitions, resources, the asset factory, checks, jobs and schedules."""
