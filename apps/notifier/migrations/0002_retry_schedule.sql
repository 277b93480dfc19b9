-- Retries wait in PostgreSQL, not in the consumer loop.
--
-- A delivery whose attempt failed transiently becomes `scheduled`: its row in
-- notifier_retry_schedule holds when to try again and the original Kafka record (what a dead
-- letter republishes, and where the envelope is read back from). The record's offset can then
-- be committed: its outcome (a retry to come) is durable. A small scheduler in every notifier
-- replica takes due rows (FOR UPDATE SKIP LOCKED, then a lease), so one failing target no
-- longer stalls the partitions behind it.
--
-- Order per key: for channels that need it, `order_key` is the envelope's subject and `seq`
-- the order rows were first written in. A delivery is not sent while an earlier one of the same
-- (channel, order_key) is unresolved; it waits `scheduled` behind it.

ALTER TABLE notifier_deliveries DROP CONSTRAINT IF EXISTS notifier_deliveries_status_check;
ALTER TABLE notifier_deliveries ADD CONSTRAINT notifier_deliveries_status_check
    CHECK (status IN ('sending', 'scheduled', 'sent', 'dead'));

ALTER TABLE notifier_deliveries
    ADD COLUMN IF NOT EXISTS order_key text,
    ADD COLUMN IF NOT EXISTS seq bigint GENERATED ALWAYS AS IDENTITY;

-- Small: only unresolved deliveries of ordered channels are in it.
CREATE INDEX IF NOT EXISTS notifier_deliveries_unresolved_idx
    ON notifier_deliveries (channel, order_key, seq)
    WHERE status IN ('sending', 'scheduled') AND order_key IS NOT NULL;

CREATE TABLE IF NOT EXISTS notifier_retry_schedule (
    event_id             uuid        NOT NULL,
    channel              text        NOT NULL,
    next_attempt_at      timestamptz NOT NULL,
    record_topic         text        NOT NULL,
    record_partition     integer     NOT NULL,
    record_offset        bigint      NOT NULL,
    record_key           bytea,
    record_value         bytea,
    -- [[name, base64 value], ...]: header counts differ per record.
    record_headers       jsonb       NOT NULL DEFAULT '[]',
    PRIMARY KEY (event_id, channel),
    FOREIGN KEY (event_id, channel) REFERENCES notifier_deliveries ON DELETE CASCADE
);

CREATE INDEX IF NOT EXISTS notifier_retry_schedule_due_idx
    ON notifier_retry_schedule (next_attempt_at);

-- The one definition of "an earlier delivery of this (channel, order_key) is still to be
-- resolved": one `scheduled`, or `sending` under a live lease or parked in the schedule. A
-- `sending` row with an expired lease and no schedule row does not block: that attempt died with
-- its process, and Kafka redelivers its record (never committed) ahead of the later ones.
-- `p_before_seq` NULL: any other such delivery (a record being consumed has no row yet).
CREATE OR REPLACE FUNCTION notifier_key_blocked(
    p_channel text, p_order_key text, p_event_id uuid, p_before_seq bigint
) RETURNS boolean
LANGUAGE sql STABLE
AS $$
    SELECT EXISTS (
        SELECT 1 FROM notifier_deliveries p
         WHERE p.channel = p_channel AND p.order_key = p_order_key AND p.event_id <> p_event_id
           AND (p_before_seq IS NULL OR p.seq < p_before_seq)
           AND p.status IN ('sending', 'scheduled')
           AND (p.status = 'scheduled'
                OR p.lease_expires_at > now()
                OR EXISTS (SELECT 1 FROM notifier_retry_schedule ps
                            WHERE ps.event_id = p.event_id AND ps.channel = p.channel)))
$$;
