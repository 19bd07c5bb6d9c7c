{#-
    Run at the start of every dbt build/run (on-run-start): stop with a message naming the var
    and its value before any work is done. The clustering vars are checked by the Python
    package (customer_segmentation.config) when the first ml model runs.
-#}
{% macro validate_vars() %}
    {%- if execute -%}
        {%- set problems = [] -%}

        {%- set snapshot = var('snapshot_date') -%}
        {%- if snapshot is not none -%}
            {%- set parsed = run_query("select try_cast(" ~ sql_string(snapshot) ~ " as date)") -%}
            {%- if parsed.columns[0].values()[0] is none -%}
                {%- do problems.append("snapshot_date: " ~ snapshot ~ " is not a date (use YYYY-MM-DD)") -%}
            {%- endif -%}
        {%- endif -%}

        {%- for name in ['earliest_plausible_date', 'latest_plausible_date'] -%}
            {%- set value = var(name) -%}
            {%- if value is not none -%}
                {%- set parsed = run_query("select try_cast(" ~ sql_string(value) ~ " as date)") -%}
                {%- if parsed.columns[0].values()[0] is none -%}
                    {%- do problems.append(name ~ ": " ~ value ~ " is not a date (use YYYY-MM-DD)") -%}
                {%- endif -%}
            {%- elif name == 'earliest_plausible_date' -%}
                {%- do problems.append(name ~ ": expected a date (YYYY-MM-DD), got null") -%}
            {%- endif -%}
        {%- endfor -%}

        {%- if var('migration_period') not in ['month', 'quarter'] -%}
            {%- do problems.append("migration_period: expected month or quarter, got " ~ var('migration_period')) -%}
        {%- elif var('migration_period') == 'quarter' and var('migration_months') is number and var('migration_months') < 3 -%}
            {%- do problems.append("migration_months: expected 3 or more with migration_period quarter (a quarter end in the span), got " ~ var('migration_months')) -%}
        {%- endif -%}
        {%- if var('refit') is not sameas true and var('refit') is not sameas false -%}
            {%- do problems.append("refit: expected true or false, got " ~ var('refit')) -%}
        {%- endif -%}
        {%- set refit_after = var('refit_after_days') -%}
        {%- if refit_after is not none and (refit_after is not number or refit_after < 0) -%}
            {%- do problems.append("refit_after_days: expected a number of days >= 0 or null, got " ~ refit_after) -%}
        {%- endif -%}
        {%- for name in ['drift_max_psi', 'drift_max_share_points', 'drift_max_distance_growth', 'segment_match_max_distance'] -%}
            {%- if var(name) is not number or var(name) <= 0 -%}
                {%- do problems.append(name ~ ": expected a number > 0, got " ~ var(name)) -%}
            {%- endif -%}
        {%- endfor -%}
        {%- if var('currency') is not string or not modules.re.fullmatch('[A-Z]{3}', var('currency')) -%}
            {%- do problems.append("currency: expected a three-letter ISO 4217 code in capitals (GBP, EUR, USD), got " ~ var('currency')) -%}
        {%- endif -%}
        {%- set top = var('report_top_customers') -%}
        {%- if top is not number or top is sameas true or top is sameas false or top < 1 or top != top | int -%}
            {%- do problems.append("report_top_customers: expected a whole number >= 1, got " ~ top) -%}
        {%- endif -%}
        {%- if var('monetary_basis') not in ['net', 'gross'] -%}
            {%- do problems.append("monetary_basis: expected net or gross, got " ~ var('monetary_basis')) -%}
        {%- endif -%}
        {%- set max_return_rate = var('audience_max_return_rate') -%}
        {%- if max_return_rate is not number or max_return_rate <= 0 -%}
            {%- do problems.append("audience_max_return_rate: expected a number > 0, got " ~ max_return_rate) -%}
        {%- endif -%}

        {%- if var('customer_id_type') not in ['bigint', 'string'] -%}
            {%- do problems.append("customer_id_type: expected bigint or string, got " ~ var('customer_id_type')) -%}
        {%- endif -%}

        {%- for name in ['migration_months', 'lapsed_after_days'] -%}
            {%- set value = var(name) -%}
            {%- if value is not number or value != value | int or value < 1 -%}
                {%- do problems.append(name ~ ": expected a whole number >= 1, got " ~ value) -%}
            {%- endif -%}
        {%- endfor -%}

        {%- set percentile = var('outlier_percentile') -%}
        {%- if percentile is not number or percentile <= 0 or percentile >= 1 -%}
            {%- do problems.append("outlier_percentile: expected a number between 0 and 1 (exclusive), got " ~ percentile) -%}
        {%- endif -%}

        {%- if var('clv_time_unit') not in ['day', 'week'] -%}
            {%- do problems.append("clv_time_unit: expected day or week, got " ~ var('clv_time_unit')) -%}
        {%- endif -%}
        {%- for name in ['clv_horizon_days', 'clv_min_repeat_customers', 'clv_min_history_days'] -%}
            {%- set value = var(name) -%}
            {%- if value is not number or value != value | int or value < 1 -%}
                {%- do problems.append(name ~ ": expected a whole number >= 1, got " ~ value) -%}
            {%- endif -%}
        {%- endfor -%}
        {%- set rate = var('clv_annual_discount_rate') -%}
        {%- if rate is not number or rate < 0 or rate >= 1 -%}
            {%- do problems.append("clv_annual_discount_rate: expected a number from 0 up to 1 (0.10 is 10% a year), got " ~ rate) -%}
        {%- endif -%}
        {%- set correlation = var('clv_max_frequency_value_correlation') -%}
        {%- if correlation is not number or correlation <= 0 or correlation > 1 -%}
            {%- do problems.append("clv_max_frequency_value_correlation: expected a number above 0 and at most 1, got " ~ correlation) -%}
        {%- endif -%}
        {%- set calibration_end = var('clv_calibration_end') -%}
        {%- if calibration_end is not none -%}
            {%- set parsed = run_query("select try_cast(" ~ sql_string(calibration_end) ~ " as date)") -%}
            {%- if parsed.columns[0].values()[0] is none -%}
                {%- do problems.append("clv_calibration_end: " ~ calibration_end ~ " is not a date (use YYYY-MM-DD)") -%}
            {%- endif -%}
        {%- endif -%}

        {#- Files are read by DuckDB only; on Spark the source is a table. -#}
        {%- if var('raw_transactions_path') is none and target.type == 'duckdb' -%}
            {%- do problems.append("raw_transactions_path: not set (null); give the Parquet, CSV or .xlsx file to read") -%}
        {%- endif -%}
        {%- for name in ['raw_transactions_path', 'customer_attributes_path'] -%}
            {%- set path = var(name) -%}
            {%- if path is not none and target.type == 'duckdb' -%}
                {%- set found = run_query("select count(*) from glob(" ~ sql_string(path) ~ ")") -%}
                {%- if found.columns[0].values()[0] == 0 -%}
                    {%- do problems.append(name ~ ": no file at " ~ path ~ " (relative paths start from the directory dbt runs in)") -%}
                {%- endif -%}
            {%- endif -%}
        {%- endfor -%}

        {%- if problems -%}
            {{ exceptions.raise_compiler_error("Invalid dbt vars:\n  - " ~ (problems | join("\n  - "))) }}
        {%- endif -%}
    {%- endif -%}
    select 1
{% endmacro %}
