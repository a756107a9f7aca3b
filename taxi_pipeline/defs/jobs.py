"""One job per colour: its three assets and their checks, for one month per run."""

from __future__ import annotations

import dagster as dg

from taxi_pipeline.lib.colours import Colour


def job_name(colour: Colour) -> str:
    return f"{colour.name}_taxi_job"


def build_colour_job(colour: Colour):
    return dg.define_asset_job(
        job_name(colour),
        selection=dg.AssetSelection.groups(colour.name),
        description=f"Loads one month of {colour.name} taxi trips: download, stage, merge.",
        tags={"taxi": colour.name},
    )
