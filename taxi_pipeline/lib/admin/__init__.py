"""The operators' admin of a target: its tables and objects, listed, counted, dropped, adopted.
Each target makes its own (`lib.targets`: `Target.admin`); the CLI uses nothing else."""
