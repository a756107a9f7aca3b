"""The operators' admin of a target: its tables and objects, listed, counted, dropped, adopted.
Each target resource builds its own (`TargetResource.admin`); the CLI uses nothing else."""
