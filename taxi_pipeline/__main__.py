"""`python -m taxi_pipeline <command>`: the operators' commands (see `taxi_pipeline/cli/main.py`)."""

import sys

from taxi_pipeline.cli.main import main

sys.exit(main())
