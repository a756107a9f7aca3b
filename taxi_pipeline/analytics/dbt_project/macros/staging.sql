{#- A colour's trips with the types analytics need: integer ids (the main tables keep the files' text),
    the pickup and dropoff times under one name for both colours. `months` (a list, or none for
    every month) filters the main table's read itself, on its partitioning column: BigQuery prunes
    a time-unit column-partitioned table on a constant filter of that column
    (https://cloud.google.com/bigquery/docs/querying-partitioned-tables#use_a_constant_filter_expression). -#}
{% macro staged_trips(colour, time_prefix, months=none) -%}
{%- set integer = api.Column.translate_type('integer') -%}
select
    unique_row_id,
    filename,
    {{ file_month() }} as file_month,
    '{{ colour }}' as colour,
    {{ dbt.safe_cast('vendorid', integer) }} as vendor_id,
    {{ time_prefix }}_pickup_datetime as pickup_datetime,
    {{ time_prefix }}_dropoff_datetime as dropoff_datetime,
    {{ dbt.safe_cast('ratecodeid', integer) }} as rate_code_id,
    {{ dbt.safe_cast('pulocationid', integer) }} as pickup_zone_id,
    {{ dbt.safe_cast('dolocationid', integer) }} as dropoff_zone_id,
    passenger_count,
    trip_distance,
    payment_type,
    fare_amount,
    extra,
    mta_tax,
    tip_amount,
    tolls_amount,
    improvement_surcharge,
    congestion_surcharge,
    total_amount
from {{ source('taxi', colour ~ '_tripdata') }}
{%- if months is not none %}
where {{ file_month() }} in ({{ month_literals(months) }})
{%- endif %}
{%- endmacro %}
