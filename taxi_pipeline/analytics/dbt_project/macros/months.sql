{#- The month a row belongs to is the month of the file it came from (the Dagster partition), not its
    pickup time: a TLC file holds some trips dated in other months, and a month is replaced whole. -#}

{% macro file_month() %}{{ return(adapter.dispatch('file_month', 'taxi_analytics')()) }}{% endmacro %}

{#- BigQuery's main table carries the file's month as its partitioning column. -#}
{% macro bigquery__file_month() %}file_month{% endmacro %}

{#- DuckDB's main table is a view over one table per month; the month is in the file's name. -#}
{% macro default__file_month() -%}
cast(strptime(regexp_extract(filename, '(\d{4}-\d{2})', 1), '%Y-%m') as date)
{%- endmacro %}

{#- On an incremental build, only the months taxi_pipeline names (var `months`); none named, none
    built. Every value is checked to be a date literal before it reaches the SQL. -#}
{% macro months_filter(column='file_month') -%}
{%- if is_incremental() -%}
where {{ column }} in ({{ month_literals(var('months')) }})
{%- endif -%}
{%- endmacro %}

{% macro month_literals(months) -%}
{%- if months | length == 0 -%}
cast(null as date)
{%- endif -%}
{%- for month in months -%}
{%- if not modules.re.fullmatch('\d{4}-\d{2}-01', month | string) -%}
{{ exceptions.raise_compiler_error("var months: " ~ month ~ " is not the first day of a month (YYYY-MM-01)") }}
{%- endif -%}
date '{{ month }}'{% if not loop.last %}, {% endif %}
{%- endfor -%}
{%- endmacro %}

{#- Replaces a month whole: BigQuery overwrites the month's partitions, DuckDB deletes the month's
    rows and inserts the new ones, in one transaction. BigQuery partitions a DATE column by month
    (https://cloud.google.com/bigquery/docs/partitioned-tables#date_timestamp_partitioned_tables);
    dbt-bigquery's insert_overwrite replaces the partitions the new rows fall in
    (https://docs.getdbt.com/reference/resource-configs/bigquery-configs#the-insert_overwrite-strategy). -#}
{% macro by_month_config(month_column) -%}
{%- if target.type == 'bigquery' -%}
{{ return({'incremental_strategy': 'insert_overwrite',
           'partition_by': {'field': month_column, 'data_type': 'date', 'granularity': 'month'}}) }}
{%- else -%}
{{ return({'incremental_strategy': 'delete+insert', 'unique_key': month_column}) }}
{%- endif -%}
{%- endmacro %}
