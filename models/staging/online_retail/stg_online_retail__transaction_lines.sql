-- Raw columns keep the input file's spelling (quoted); everything after staging is snake_case.
-- noqa: disable=RF06
with

source as (

    select * from {{ source('online_retail', 'transactions') }}

),

renamed as (

    select
        cast(source_row_number as bigint) as transaction_line_id,
        trim(cast("InvoiceNo" as varchar)) as invoice_id,
        trim(cast("StockCode" as varchar)) as stock_code,
        nullif(trim(cast("Description" as varchar)), '') as product_description,
        cast("Quantity" as integer) as quantity,
        cast("InvoiceDate" as timestamp) as invoiced_at,
        -- Exact decimal money: sums then do not depend on row order (doubles would, and a
        -- build on shuffled rows could round a cent differently).
        cast("UnitPrice" as decimal(18, 4)) as unit_price,
        cast(cast("CustomerID" as double) as bigint) as customer_id,
        nullif(trim(cast("Country" as varchar)), '') as country

    from source

)

select * from renamed
