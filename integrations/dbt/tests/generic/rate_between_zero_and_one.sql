{#- Rates are fractions in [0, 1] (docs/marts.md); null when the denominator is 0. -#}
{% test rate_between_zero_and_one(model, column_name) %}
select * from {{ model }} where {{ column_name }} < 0 or {{ column_name }} > 1
{% endtest %}
