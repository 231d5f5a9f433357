-- The publisher: set-up rows (not timed), the sequence that numbers the timed transactions, the
-- workload transaction orders_tx(i) and the publication. Keys and values as common/workload.cc.

INSERT INTO company (company_id, name)
  SELECT 'C' || c, 'Company ' || c FROM generate_series(1, 2) c;
-- SiteName(n) = "C" + (n/3 + 1) + "-S" + (n%3 + 1), n = 0..5
INSERT INTO site (site_id, company_id, description)
  SELECT 'C' || (n / 3 + 1) || '-S' || (n % 3 + 1), 'C' || (n / 3 + 1),
         'Site C' || (n / 3 + 1) || '-S' || (n % 3 + 1)
  FROM generate_series(0, 5) n;
INSERT INTO item (site_id, part_no, description, unit_price)
  SELECT 'C' || (n / 3 + 1) || '-S' || (n % 3 + 1), 'P-' || lpad(p::text, 3, '0'),
         'Part P-' || lpad(p::text, 3, '0'), 10 + p
  FROM generate_series(0, 5) n, generate_series(0, 199) p;
INSERT INTO customer (customer_id, company_id, name, credit_limit)
  SELECT 'CUST-' || lpad(n::text, 2, '0'), CASE WHEN n < 50 THEN 'C1' ELSE 'C2' END,
         'Customer ' || n, 10000 + 100 * n
  FROM generate_series(0, 99) n;

-- pgbench's script takes i from here: SELECT orders_tx(nextval('tx_i')::int). Not replicated.
CREATE SEQUENCE tx_i START 1;

-- Transaction i of the timed part, steps 1-5 of shared/WORKLOAD.md, in one transaction (the
-- statement pgbench sends, autocommit). stamp: also insert (i, clock_timestamp()) into
-- tx_stamp as the last statement (the latency run).
CREATE FUNCTION orders_tx(i integer, stamp boolean DEFAULT false) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
  v_customer text;
  v_company integer;  -- 0 for C1, 1 for C2
  v_n integer;
  v_site text;
  v_order text := 'O-' || i;
  v_part integer;
  v_item_site integer;
BEGIN
  -- 1. Every fifth transaction brings a new customer: C1 when i is even, C2 when odd.
  IF i % 5 = 0 THEN
    v_customer := 'CU-' || i;
    v_company := CASE WHEN i % 2 = 0 THEN 0 ELSE 1 END;
    INSERT INTO customer (customer_id, company_id, name, credit_limit)
      VALUES (v_customer, 'C' || (v_company + 1), 'Customer ' || v_customer, 5000 + i % 5000);
  ELSE
    v_n := ((i::bigint * 7919) % 100)::integer;
    v_customer := 'CUST-' || lpad(v_n::text, 2, '0');
    v_company := CASE WHEN v_n < 50 THEN 0 ELSE 1 END;
  END IF;
  -- 2. The order, at site number company * 3 + i % 3.
  v_site := 'C' || (v_company + 1) || '-S' || (i % 3 + 1);
  INSERT INTO customerorder (order_no, customer_id, site_id, order_date, status)
    VALUES (v_order, v_customer, v_site,
            '2026-' || lpad((1 + (i / 28) % 12)::text, 2, '0') || '-' || lpad((1 + i % 28)::text, 2, '0'),
            'Planned');
  -- 3. Three lines at the order's site, priced at the item's current unit_price (read here).
  FOR v_line IN 1..3 LOOP
    v_part := ((i::bigint * 31 + v_line * 17) % 200)::integer;
    INSERT INTO customerorderline (order_no, line_no, site_id, part_no, qty, price)
      SELECT v_order, v_line, v_site, it.part_no, 1 + (i + v_line) % 9, it.unit_price
      FROM item it
      WHERE it.site_id = v_site AND it.part_no = 'P-' || lpad(v_part::text, 3, '0');
    IF NOT FOUND THEN
      RAISE EXCEPTION 'orders_tx(%): no item P-% at %', i, lpad(v_part::text, 3, '0'), v_site;
    END IF;
  END LOOP;
  -- 4. Every tenth raises item number i % 200 at site number i % 6 by 1.
  IF i % 10 = 0 THEN
    v_item_site := i % 6;
    UPDATE item SET unit_price = unit_price + 1
      WHERE site_id = 'C' || (v_item_site / 3 + 1) || '-S' || (v_item_site % 3 + 1)
        AND part_no = 'P-' || lpad((i % 200)::text, 3, '0');
    IF NOT FOUND THEN RAISE EXCEPTION 'orders_tx(%): item to raise not found', i; END IF;
  END IF;
  -- 5. Every 25th (after the 25th) releases the order of 25 transactions ago.
  IF i % 25 = 0 AND i > 25 THEN
    UPDATE customerorder SET status = 'Released' WHERE order_no = 'O-' || (i - 25);
    IF NOT FOUND THEN RAISE EXCEPTION 'orders_tx(%): order O-% not found', i, i - 25; END IF;
  END IF;
  IF stamp THEN
    INSERT INTO tx_stamp (i, master_ts) VALUES (i, clock_timestamp());
  END IF;
END
$$;

CREATE PUBLICATION pub FOR ALL TABLES;
-- No ANALYZE here: ANALYZE of the empty order tables would record 0 rows, and the foreign-key
-- checks' cached plans, made on those statistics, would scan customerorder and customer
-- sequentially for the whole run (measured: 3,263 -> 916 tx/s over 12,000 transactions).
-- Never-analyzed tables are estimated from their current size; autovacuum analyzes them as
-- they grow, as it would in production.
