-- Tolerance in minor units per currency, parsed from the `tolerances` var ("USD=0,JPY=1").
-- A currency that is not listed has tolerance 0.
SELECT
    upper(trim(split_part(part, '=', 1))) AS currency,
    CAST(trim(split_part(part, '=', 2)) AS BIGINT) AS tolerance_minor
FROM (SELECT unnest(string_split(CAST({{ var('tolerances') }} AS VARCHAR), ',')) AS part)
WHERE trim(part) <> ''
