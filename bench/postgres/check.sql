-- Row-level equality, run alike at both ends: per table, the row count and the md5 of every
-- row's text in key order. tx_stamp is compared on the publisher's columns (i, master_ts).
SET TimeZone = 'UTC';
SELECT 'company', count(*), md5(coalesce(string_agg(t::text, E'\n' ORDER BY company_id), '')) FROM company t
UNION ALL
SELECT 'site', count(*), md5(coalesce(string_agg(t::text, E'\n' ORDER BY site_id), '')) FROM site t
UNION ALL
SELECT 'customer', count(*), md5(coalesce(string_agg(t::text, E'\n' ORDER BY customer_id), '')) FROM customer t
UNION ALL
SELECT 'item', count(*), md5(coalesce(string_agg(t::text, E'\n' ORDER BY site_id, part_no), '')) FROM item t
UNION ALL
SELECT 'customerorder', count(*), md5(coalesce(string_agg(t::text, E'\n' ORDER BY order_no), '')) FROM customerorder t
UNION ALL
SELECT 'customerorderline', count(*), md5(coalesce(string_agg(t::text, E'\n' ORDER BY order_no, line_no), '')) FROM customerorderline t
UNION ALL
SELECT 'tx_stamp', count(*), md5(coalesce(string_agg((t.i, t.master_ts)::text, E'\n' ORDER BY i), '')) FROM tx_stamp t
ORDER BY 1;  -- a parallel plan may return the tables in any order
