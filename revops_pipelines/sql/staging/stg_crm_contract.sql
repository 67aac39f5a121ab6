-- CRM contracts as typed columns: account, opportunity, start and end dates, term, status.
WITH parsed AS (
    SELECT
        id,
        deleted,
        from_json(
            payload,
            '{"AccountId": "VARCHAR", "Opportunity__c": "VARCHAR", "StartDate": "VARCHAR",
              "EndDate": "VARCHAR", "ContractTerm": "VARCHAR", "Status": "VARCHAR",
              "IsDeleted": "VARCHAR", "SystemModstamp": "VARCHAR"}'
        ) AS p
    FROM {{ source('raw', 'crm_contract') }}
)

SELECT
    r.id AS contract_id,
    blank_null(r.p.AccountId) AS account_id,
    blank_null(r.p.Opportunity__c) AS opportunity_id,
    cast(r.p.StartDate AS DATE) AS start_date,
    cast(r.p.EndDate AS DATE) AS end_date,
    cast(cast(r.p.ContractTerm AS DECIMAL(18, 4)) AS INTEGER) AS contract_term,
    r.p.Status AS status,
    coalesce(r.deleted, FALSE) OR coalesce(sf_bool(r.p.IsDeleted), FALSE) AS is_deleted,
    cast(r.p.SystemModstamp AS TIMESTAMPTZ) AS updated_at
FROM parsed AS r
