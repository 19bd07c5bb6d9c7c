-- Every customer at a snapshot appears in exactly one transition into it, and every customer
-- at the earlier snapshot in exactly one transition out of it.
with

history as (

    select * from {{ ref('customer_segment_history') }}

),

migration as (

    select * from {{ ref('segment_migration') }}

),

at_snapshot as (

    select
        snapshot_date,
        cluster_id,
        count(*) as n_customers
    from history
    group by all

),

into_snapshot as (

    select
        to_snapshot_date as snapshot_date,
        to_cluster_id as cluster_id,
        sum(n_customers) as n_customers
    from migration
    group by all

),

out_of_snapshot as (

    select
        from_snapshot_date as snapshot_date,
        from_cluster_id as cluster_id,
        sum(n_customers) as n_customers
    from migration
    where from_cluster_id is not null
    group by all

)

select
    'into' as direction,
    into_snapshot.*,
    at_snapshot.n_customers as expected
from into_snapshot
left join at_snapshot
    on
        into_snapshot.snapshot_date = at_snapshot.snapshot_date
        and into_snapshot.cluster_id = at_snapshot.cluster_id
where at_snapshot.n_customers is distinct from into_snapshot.n_customers

union all

select
    'out' as direction,
    out_of_snapshot.*,
    at_snapshot.n_customers as expected
from out_of_snapshot
left join at_snapshot
    on
        out_of_snapshot.snapshot_date = at_snapshot.snapshot_date
        and out_of_snapshot.cluster_id = at_snapshot.cluster_id
where at_snapshot.n_customers is distinct from out_of_snapshot.n_customers
