-- A view whatever the folder's default: a table would keep the rows of the build that made it.
{{ config(materialized='view') }}

-- The builds that wrote this database, one row each, for the report's check that its tables
-- come from one complete successful build. A view, so it reads build_log when the report
-- runs: the row the build's on-run-end hook writes after every model, this one included.
with

build_log as (

    select * from {{ source('build_hooks', 'build_log') }}

),

final as (

    select
        invocation_id,
        min(logged_at) filter (where event = 'started') as started_at,
        any_value(command) as command,
        bool_or(is_full_build) as is_full_build,
        any_value(raw_transactions_path) as raw_transactions_path,
        any_value(status) filter (where event = 'finished') as status,
        any_value(failed_nodes) filter (where event = 'finished') as failed_nodes

    from build_log
    group by invocation_id

)

select * from final
