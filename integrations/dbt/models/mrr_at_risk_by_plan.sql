-- Where the at-risk revenue sits: customers and MRR by current plan and risk segment, with each segment's
-- share of the plan's MRR. Built on the customer 360 mart.
with customers as (
    select plan, risk_segment, mrr_cents
    from {{ source('undercurrent', 'mart_customer_360') }}
    where status in ('active', 'past_due')
)
select plan,
       risk_segment,
       count(*) as customers,
       sum(mrr_cents)::bigint as mrr_cents,
       sum(mrr_cents)::double precision / nullif(sum(sum(mrr_cents)) over (partition by plan), 0) as share_of_plan_mrr
from customers
group by plan, risk_segment
