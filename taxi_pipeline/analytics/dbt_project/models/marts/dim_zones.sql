-- The TLC's taxi zones (the seed is the TLC's taxi_zone_lookup.csv).
select
    locationid as zone_id,
    borough,
    zone,
    service_zone
from {{ ref('taxi_zone_lookup') }}
