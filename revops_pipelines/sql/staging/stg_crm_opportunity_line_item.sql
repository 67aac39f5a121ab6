-- Opportunity line items; money in the opportunity's currency (lines carry none of their own).
select
    r.id as line_item_id,
    blank_null(r.payload->>'$.OpportunityId') as opportunity_id,
    blank_null(r.payload->>'$.Product2Id') as product_id,
    blank_null(r.payload->>'$.ProductCode') as sku,
    cast(r.payload->>'$.Quantity' as double) as quantity,
    to_minor(r.payload->>'$.UnitPrice', coalesce(o.currency_exponent, 2)) as unit_price_minor,
    to_minor(r.payload->>'$.TotalPrice', coalesce(o.currency_exponent, 2)) as total_price_minor,
    o.currency,
    coalesce(r.deleted, false) or coalesce(sf_bool(r.payload->>'$.IsDeleted'), false) as is_deleted,
    cast(r.payload->>'$.SystemModstamp' as timestamptz) as updated_at
from {{ source('raw', 'crm_opportunity_line_item') }} as r
left join {{ ref('stg_crm_opportunity') }} as o
    on o.opportunity_id = r.payload->>'$.OpportunityId'
