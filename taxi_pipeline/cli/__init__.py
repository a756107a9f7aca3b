"""The operators' CLI: `python -m taxi_pipeline counts | fresh-start <colour>|all | adopt <colour> | preflight`."""
