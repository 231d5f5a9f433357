-- The six tables of the orders workload (shared/WORKLOAD.md, deploy/master_configuration.txtpb),
-- created alike at the publisher and at the subscriber. Types as Ferry gives them to SQLite:
-- TEXT unless the catalog says INTEGER or REAL (REAL is SQLite's 8-byte float: double precision).
-- Primary keys and foreign keys only: like Ferry's catalog (`unindexed: true`), no index on the
-- order's and the line's references to customer, site and item.
CREATE TABLE company (
  company_id text PRIMARY KEY,
  name text
);
CREATE TABLE site (
  site_id text PRIMARY KEY,
  company_id text REFERENCES company (company_id),
  description text
);
CREATE TABLE customer (
  customer_id text PRIMARY KEY,
  company_id text REFERENCES company (company_id),
  name text,
  credit_limit integer
);
CREATE TABLE item (
  site_id text REFERENCES site (site_id),
  part_no text,
  description text,
  unit_price double precision,
  PRIMARY KEY (site_id, part_no)
);
CREATE TABLE customerorder (
  order_no text PRIMARY KEY,
  customer_id text REFERENCES customer (customer_id),
  site_id text REFERENCES site (site_id),
  order_date text,
  status text
);
CREATE TABLE customerorderline (
  order_no text REFERENCES customerorder (order_no),
  line_no integer,
  site_id text,
  part_no text,
  qty integer,
  price double precision,
  PRIMARY KEY (order_no, line_no),
  FOREIGN KEY (site_id, part_no) REFERENCES item (site_id, part_no)
);
-- Written only in the latency run (orders_tx(i, true)): the publisher's stamp, taken by the
-- transaction's last statement, just before its COMMIT. Replicated like the six tables; the
-- subscriber adds a column replica_ts that a trigger fills as the apply worker inserts the row
-- (subscriber.sql). Empty in the other runs.
CREATE TABLE tx_stamp (
  i integer PRIMARY KEY,
  master_ts timestamptz
);
