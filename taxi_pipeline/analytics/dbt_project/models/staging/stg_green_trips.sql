-- The staging views (for analysts; var `staging_months` limits them, as preflight's dry run does).
{{ staged_trips('green', 'lpep', var('staging_months', none)) }}
