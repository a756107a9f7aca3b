-- The staging views (for analysts; var `staging_months` limits them, as preflight's dry run does).
{{ staged_trips('yellow', 'tpep', var('staging_months', none)) }}
