-- events_api_accept_event: admit one event against its key's per-minute rate and monthly
-- quota AND store the event with its outbox row, in ONE statement (one round trip, one transaction).
--
-- Why a function: the previous path took four round trips per event (rate upsert, quota upsert,
-- then BEGIN/INSERT/INSERT/COMMIT) and had to give a quota unit back, best-effort, when the
-- insert failed. Here the counters and the rows commit together or not at all, so the quota is
-- exact, and the hot counter rows are locked only inside PostgreSQL (never across a client round
-- trip), from the upsert to the statement's commit.
--
-- Outcomes: ('accepted', 0), ('rate', seconds to the next minute), ('quota', seconds to the next
-- UTC month). A refusal for quota still counts against the rate (the request was made), as the
-- previous path did; a refusal stores nothing else.

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
    INSERT INTO outbox (event_id, topic, subject, payload, headers)
    VALUES (p_event_id, p_topic, p_subject, p_payload, p_headers);
    outcome := 'accepted';
    retry_after_s := 0;
END;
$$;
