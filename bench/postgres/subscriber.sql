-- The subscriber, before CREATE SUBSCRIPTION: the replica's stamp for the latency run, and the
-- procedure the driver waits with.

-- The apply worker runs with session_replication_role = replica, where ordinary triggers do
-- not fire: ENABLE ALWAYS. The row it inserts is the transaction's last change, so the stamp is
-- taken just before the apply worker commits (as Ferry's worker stamps just before its COMMIT).
ALTER TABLE tx_stamp ADD COLUMN replica_ts timestamptz;
CREATE FUNCTION stamp_replica() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.replica_ts := clock_timestamp();
  RETURN NEW;
END
$$;
CREATE TRIGGER tx_stamp_replica BEFORE INSERT ON tx_stamp
  FOR EACH ROW EXECUTE FUNCTION stamp_replica();
ALTER TABLE tx_stamp ENABLE ALWAYS TRIGGER tx_stamp_replica;

-- Polls every 10 ms (a fresh snapshot each time) until order `wanted` is here, then returns
-- the time (epoch seconds) it saw it; NULL after timeout_s. The publisher applies one client's
-- transactions in commit order, and so does the apply worker, one transaction at a time: when
-- the last one's order is here, so is everything before it. The row-by-row check follows.
CREATE PROCEDURE wait_for_order(wanted text, timeout_s double precision,
                                INOUT seen_at numeric DEFAULT NULL)
LANGUAGE plpgsql AS $$
DECLARE
  deadline timestamptz := clock_timestamp() + timeout_s * interval '1 second';
BEGIN
  LOOP
    IF EXISTS (SELECT 1 FROM customerorder WHERE order_no = wanted) THEN
      seen_at := extract(epoch FROM clock_timestamp());
      RETURN;
    END IF;
    IF clock_timestamp() > deadline THEN
      seen_at := NULL;
      RETURN;
    END IF;
    COMMIT;
    PERFORM pg_sleep(0.01);
  END LOOP;
END
$$;
