-- The per-minute rate limit gets one home: events_api_admit_rate. Until now its upsert was
-- written twice, once inside events_api_accept_event (0002, 0003) and once in Python
-- (apps/events_api/limits.py, for every route but POST /events).
--
-- Both callers now pass the time they count at (`p_at`), and events_api_accept_event takes it
-- as an optional last argument: NULL means the database's clock_timestamp(), one clock for
-- every replica, as before. A test pins it instead of sleeping past a minute boundary.
--
-- Returns 0 when the request is admitted (and counted), else the seconds until the key's
-- window resets (at least 1). A zero or negative limit refuses everything.

CREATE FUNCTION events_api_admit_rate(
    p_key_id          uuid,
    p_rate_per_minute integer,
    p_at              timestamptz
) RETURNS integer
LANGUAGE plpgsql
AS $$
DECLARE
    minute_at timestamptz := date_trunc('minute', p_at);
BEGIN
    IF p_rate_per_minute > 0 THEN
        -- One row per key holds the current minute; a new minute resets it in this statement.
        -- The row is locked only inside this statement (its caller's), never across a client
        -- round trip.
        INSERT INTO api_key_rate AS r (api_key_id, window_start, admitted)
        VALUES (p_key_id, minute_at, 1)
        ON CONFLICT (api_key_id) DO UPDATE
            SET window_start = EXCLUDED.window_start,
                admitted = CASE WHEN r.window_start = EXCLUDED.window_start
                                THEN r.admitted + 1 ELSE 1 END
            WHERE r.window_start <> EXCLUDED.window_start OR r.admitted < p_rate_per_minute;
        IF FOUND THEN
            RETURN 0;
        END IF;
    END IF;
    RETURN greatest(1, ceil(extract(epoch FROM minute_at + interval '1 minute' - p_at)))::integer;
END;
$$;

-- The accept function of 0003 with its rate check replaced by events_api_admit_rate and its
-- clock injectable. Dropped and created (not replaced): a new argument is a new signature, and
-- two overloads would make the old 14-argument call ambiguous. With `p_at` defaulted, that call
-- still works.
DROP FUNCTION events_api_accept_event(
    uuid, integer, integer, uuid, text, text, text, jsonb, text, timestamptz, text, text, bytea,
    jsonb
);

CREATE FUNCTION events_api_accept_event(
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
    p_at              timestamptz DEFAULT NULL,
    OUT outcome       text,
    OUT retry_after_s integer
)
LANGUAGE plpgsql
AS $$
DECLARE
    at_time    timestamptz := coalesce(p_at, clock_timestamp());
    utc_month  timestamp   := date_trunc('month', at_time AT TIME ZONE 'UTC');
BEGIN
    retry_after_s := events_api_admit_rate(p_key_id, p_rate_per_minute, at_time);
    IF retry_after_s > 0 THEN
        outcome := 'rate';
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
            utc_month + interval '1 month' - (at_time AT TIME ZONE 'UTC'))))::integer;
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
