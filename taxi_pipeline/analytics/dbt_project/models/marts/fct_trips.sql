-- Every trip of both colours' main tables, once each (unique_row_id is already the trip's key), with
-- its zones. Incremental by month: a build replaces the months taxi_pipeline names, whole, in any
-- order (a back-filled or corrected month as well as a new one). It reads the main tables through
-- the staging views' own macro, so that an incremental build's month filter is on the main
-- tables' partitioning column itself.
{{ config(materialized='incremental', **by_month_config('file_month')) }}
{%- set months = var('months') if is_incremental() else none %}

with trips as (
    {{ staged_trips('green', 'lpep', months) }}
    union all
    {{ staged_trips('yellow', 'tpep', months) }}
)

select
    trips.*,
    pickup.borough as pickup_borough,
    pickup.zone as pickup_zone,
    dropoff.borough as dropoff_borough,
    dropoff.zone as dropoff_zone
from trips
left join {{ ref('dim_zones') }} as pickup on trips.pickup_zone_id = pickup.zone_id
left join {{ ref('dim_zones') }} as dropoff on trips.dropoff_zone_id = dropoff.zone_id
