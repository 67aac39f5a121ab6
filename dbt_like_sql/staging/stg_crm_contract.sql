select
    r.id as contract_id,
    blank_null(r.payload->>'$.AccountId') as account_id,
    blank_null(r.payload->>'$.Opportunity__c') as opportunity_id,
    cast(r.payload->>'$.StartDate' as date) as start_date,
    cast(r.payload->>'$.EndDate' as date) as end_date,
    cast(cast(r.payload->>'$.ContractTerm' as decimal(18, 4)) as integer) as contract_term,
    r.payload->>'$.Status' as status,
    coalesce(r.deleted, false) or coalesce(sf_bool(r.payload->>'$.IsDeleted'), false) as is_deleted,
    cast(r.payload->>'$.SystemModstamp' as timestamptz) as updated_at
from {{ source('raw', 'crm_contract') }} as r
