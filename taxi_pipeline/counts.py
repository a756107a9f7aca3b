"""`python -m taxi_pipeline.counts`, kept for scripts: the same as `python -m taxi_pipeline counts`."""

from __future__ import annotations

import sys

from taxi_pipeline.cli import main as cli


def main() -> int:
    return cli.main(["counts"])


if __name__ == "__main__":
    sys.exit(main())
