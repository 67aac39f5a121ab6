-- The quote-to-cash stages of each lifecycle with their time and system. The correlation id is
-- the CRM opportunity where the chain starts there, else the billing subscription or invoice.
with opportunities as (
    select * from {{ ref('contract') }} where not is_deleted
),

opportunity_by_subscription as (
    select billing_subscription_id, min(source_id) as opportunity_id
    from opportunities
    where billing_subscription_id is not null
    group by billing_subscription_id
),

subscriptions as (
    select
        s.source_id as subscription_id,
        s.created_at,
        coalesce(o.source_id, ob.opportunity_id, s.source_id) as correlation_id
    from {{ ref('subscription') }} as s
    left join opportunities as o on o.source_id = s.crm_opportunity_id
    left join opportunity_by_subscription as ob on ob.billing_subscription_id = s.source_id
),

billing_invoice as (
    select
        i.source_id as invoice_id,
        coalesce(i.finalized_at, i.created_at) as occurred_at,
        coalesce(s.correlation_id, i.source_id) as correlation_id
    from {{ ref('invoice') }} as i
    left join subscriptions as s on s.subscription_id = i.subscription_id
    where i.source_system = 'billing' and i.status <> 'draft'
),

erp_invoices as (
    select
        i.source_id as invoice_id,
        i.created_at as occurred_at,
        coalesce(b.correlation_id, i.billing_invoice_id, i.source_id) as correlation_id
    from {{ ref('invoice') }} as i
    left join billing_invoice as b on b.invoice_id = i.billing_invoice_id
    where i.source_system = 'erp'
)

select source_id as correlation_id, 'opportunity_won' as stage, 'crm' as system,
    source_id as record_id, cast(close_date as timestamptz) as occurred_at
from opportunities
where is_closed and is_won

union all

select correlation_id, 'subscription_provisioned', 'billing', subscription_id, created_at
from subscriptions

union all

select correlation_id, 'invoice_generated', 'billing', invoice_id, occurred_at
from billing_invoice

union all

select correlation_id, 'erp_posted', 'erp', invoice_id, occurred_at
from erp_invoices

union all

select coalesce(b.correlation_id, p.invoice_id, p.source_id), 'payment_applied', 'billing',
    p.source_id, p.paid_at
from {{ ref('payment') }} as p
left join billing_invoice as b on b.invoice_id = p.invoice_id
where p.source_system = 'billing' and p.status = 'paid'

union all

select coalesce(e.correlation_id, p.source_id), 'payment_applied', 'erp', p.source_id, p.paid_at
from {{ ref('payment') }} as p
left join erp_invoices as e on e.invoice_id = p.invoice_id
where p.source_system = 'erp'
