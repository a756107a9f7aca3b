-- Revenue per month (the file's), colour and pickup zone. Incremental by month, as fct_trips.
{{ config(materialized='incremental', **by_month_config('revenue_month')) }}

select
    file_month as revenue_month,
    colour,
    pickup_zone_id,
    pickup_borough,
    pickup_zone,
    count(*) as trips,
    sum(passenger_count) as passengers,
    sum(trip_distance) as trip_distance,
    sum(fare_amount) as fare_amount,
    sum(extra) as extra,
    sum(mta_tax) as mta_tax,
    sum(tip_amount) as tip_amount,
    sum(tolls_amount) as tolls_amount,
    sum(improvement_surcharge) as improvement_surcharge,
    sum(congestion_surcharge) as congestion_surcharge,
    sum(total_amount) as total_amount
from {{ ref('fct_trips') }}
{{ months_filter('file_month') }}
group by file_month, colour, pickup_zone_id, pickup_borough, pickup_zone
