-- The live stream's cursor (GET /api/v1/stream, apps/events_api/stream.py).
--
-- `api_key_id`: whose change the row is, so the stream serves each caller only its own rows
-- (written by the accept function below and by storage.enqueue for task changes; NULL on rows
-- older than this migration, which the stream skips). No foreign key: the hot insert path
-- would pay a lookup on api_keys for a fact it already has.
--
-- `stream_xid`: the writing transaction's id. The stream reads rows in (stream_xid, id) order and
-- only below the oldest transaction still running (pg_snapshot_xmin), so the set it has read is
-- final: a row that commits later always sorts after the cursor. Ordering by `id` alone would
-- skip rows: a bigserial is taken at INSERT, not at COMMIT, so id 10 can commit after id 11.
ALTER TABLE outbox ADD COLUMN api_key_id uuid;
ALTER TABLE outbox ADD COLUMN stream_xid xid8 NOT NULL DEFAULT pg_current_xact_id();
CREATE INDEX outbox_stream ON outbox (stream_xid, id);
CREATE INDEX outbox_stream_by_key ON outbox (api_key_id, stream_xid, id)
    WHERE api_key_id IS NOT NULL;

-- Wake the stream hubs (one per events-api process) when the relay marks rows sent: one
-- NOTIFY per relay batch, never per request. A NOTIFY serialises its transaction's commit on a
-- cluster-wide lock, so it stays off the accept path; the hubs also poll, so rows written while
-- no relay runs (Kafka down, relay disabled) still reach the stream, a poll interval later.
CREATE FUNCTION events_api_stream_wake() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM pg_notify('events_api_stream', '');
    RETURN NULL;
END;
$$;
CREATE TRIGGER outbox_stream_wake AFTER UPDATE OF sent_at ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION events_api_stream_wake();

-- The accept function of 0002, now also recording the key on the outbox row.
CREATE OR REPLACE FUNCTION events_api_accept_event(
    p_key_id          uuid,
    p_rate_per_minute integer,
    p_monthly_quota   integer,
    p_event_id        uuid,
    p_category        text,
    p_message         text,
    p_description     text,
    p_fields          jsonb,
    p_correlation_id  text,
    p_received_at     timestamptz,
    p_topic           text,
    p_subject         text,
    p_payload         bytea,
    p_headers         jsonb,
    OUT outcome       text,
    OUT retry_after_s integer
)
LANGUAGE plpgsql
AS $$
DECLARE
    at_time    timestamptz := clock_timestamp();
    minute_at  timestamptz := date_trunc('minute', at_time);
    utc_month  timestamp   := date_trunc('month', at_time AT TIME ZONE 'UTC');
BEGIN
    IF p_rate_per_minute > 0 THEN
        -- One row per key holds the current minute; a new minute resets it in this statement.
        INSERT INTO api_key_rate AS r (api_key_id, window_start, admitted)
        VALUES (p_key_id, minute_at, 1)
        ON CONFLICT (api_key_id) DO UPDATE
            SET window_start = EXCLUDED.window_start,
                admitted = CASE WHEN r.window_start = EXCLUDED.window_start
                                THEN r.admitted + 1 ELSE 1 END
            WHERE r.window_start <> EXCLUDED.window_start OR r.admitted < p_rate_per_minute;
    END IF;
    IF p_rate_per_minute <= 0 OR NOT FOUND THEN
        outcome := 'rate';
        retry_after_s := greatest(1, ceil(extract(epoch FROM
            minute_at + interval '1 minute' - clock_timestamp())))::integer;
        RETURN;
    END IF;

    IF p_monthly_quota > 0 THEN
        INSERT INTO api_key_monthly_usage AS u (api_key_id, month, accepted)
        VALUES (p_key_id, utc_month::date, 1)
        ON CONFLICT (api_key_id, month) DO UPDATE
            SET accepted = u.accepted + 1
            WHERE u.accepted < p_monthly_quota;
    END IF;
    IF p_monthly_quota <= 0 OR NOT FOUND THEN
        outcome := 'quota';
        retry_after_s := greatest(1, ceil(extract(epoch FROM
            utc_month + interval '1 month' - (clock_timestamp() AT TIME ZONE 'UTC'))))::integer;
        RETURN;
    END IF;

    INSERT INTO events (id, api_key_id, category, message, description, fields, correlation_id,
                        received_at)
    VALUES (p_event_id, p_key_id, p_category, p_message, p_description, p_fields,
            p_correlation_id, p_received_at);
    INSERT INTO outbox (event_id, topic, subject, payload, headers, api_key_id)
    VALUES (p_event_id, p_topic, p_subject, p_payload, p_headers, p_key_id);
    outcome := 'accepted';
    retry_after_s := 0;
END;
$$;
