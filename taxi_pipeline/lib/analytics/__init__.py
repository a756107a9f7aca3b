"""The analytics models (dbt) on the main tables: the project, its profile, and which months a build
replaces."""
