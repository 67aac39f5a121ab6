-- CRM contracts as typed columns: account, opportunity, start and end dates, term, status.
with parsed as (
    select
        id,
        deleted,
        from_json(
            payload,
            '{"AccountId": "VARCHAR", "Opportunity__c": "VARCHAR", "StartDate": "VARCHAR",
              "EndDate": "VARCHAR", "ContractTerm": "VARCHAR", "Status": "VARCHAR",
              "IsDeleted": "VARCHAR", "SystemModstamp": "VARCHAR"}'
        ) as p
    from {{ source('raw', 'crm_contract') }}
)

select
    r.id as contract_id,
    blank_null(r.p.AccountId) as account_id,
    blank_null(r.p.Opportunity__c) as opportunity_id,
    cast(r.p.StartDate as date) as start_date,
    cast(r.p.EndDate as date) as end_date,
    cast(cast(r.p.ContractTerm as decimal(18, 4)) as integer) as contract_term,
    r.p.Status as status,
    coalesce(r.deleted, false) or coalesce(sf_bool(r.p.IsDeleted), false) as is_deleted,
    cast(r.p.SystemModstamp as timestamptz) as updated_at
from parsed as r
