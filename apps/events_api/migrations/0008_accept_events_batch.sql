-- Group commit for POST /api/v1/events (apps/events_api/admission.py): every accept that a
-- process receives in one event-loop tick is admitted and stored by ONE call of
-- events_api_accept_events, in one statement and one transaction (autocommit), so one WAL flush
-- covers them all instead of one each.
--
-- Per key, the batch's requests are admitted in their order in the arrays (arrival order):
--   - the rate: as many as the key's current minute has left; the rest are refused ('rate')
--     and cost nothing;
--   - the quota: of those within the rate, as many as the month has left; the rest are refused
--     ('quota'); as in 0002, a quota refusal still counts against the rate (the request was
--     made) and stores nothing else.
-- The counter rows are locked (FOR UPDATE) until the statement commits, keys in uuid order, rate
-- row before usage row: concurrent batches (other replicas, single-request routes) take the
-- locks in one global order, so they queue and never deadlock. The counters move by exactly what
-- was stored, in the same transaction as the rows: a refused event costs no quota, an accepted
-- one is counted once.
--
-- The batch arrives as ONE json array of objects (one per request, in arrival order): the API
-- builds it with a single C-speed json.dumps, and PostgreSQL unpacks it in its own process,
-- rather than the driver adapting fourteen arrays element by element in Python. `payload` is
-- the envelope's JSON as a string, stored byte for byte as the outbox payload (bytea).
-- Returns one outcome and one retry delay (0 when accepted) per position.
--
-- `p_at` is the time the batch is counted at, as in events_api_accept_event (0004): NULL means
-- the database's clock_timestamp(); a test pins it. A batch of one request and a call of
-- events_api_accept_event admit and store the same thing (tests/apps/test_events_api_admission.py).

CREATE FUNCTION events_api_accept_events(
    p_batch           json,
    p_at              timestamptz DEFAULT NULL,
    OUT outcomes      text[],
    OUT retry_after_s integer[]
)
LANGUAGE plpgsql
AS $$
DECLARE
    n            integer     := json_array_length(p_batch);
    at_time      timestamptz := coalesce(p_at, clock_timestamp());
    minute_at    timestamptz := date_trunc('minute', at_time);
    utc_month    timestamp   := date_trunc('month', at_time AT TIME ZONE 'UTC');
    quota_retry  integer     := greatest(1, ceil(extract(epoch FROM
                                    utc_month + interval '1 month'
                                    - (at_time AT TIME ZONE 'UTC'))))::integer;
    k            record;
    wanted       integer;
    used         integer;
    window_at    timestamptz;
    within_rate  integer;
    within_quota integer;
    rate_retry   integer;
    pos          integer;
    i            integer;
BEGIN
    outcomes := array_fill('accepted'::text, ARRAY[n]);
    retry_after_s := array_fill(0, ARRAY[n]);
    IF n = 0 THEN
        RETURN;
    END IF;

    FOR k IN
        SELECT u.key_id, min(u.rate) AS rate, min(u.quota) AS quota,
               array_agg(u.ord::integer ORDER BY u.ord) AS ords
          FROM ROWS FROM (json_to_recordset(p_batch) AS (key_id uuid, rate integer, quota integer))
               WITH ORDINALITY AS u(key_id, rate, quota, ord)
         GROUP BY u.key_id
         ORDER BY u.key_id
    LOOP
        wanted := cardinality(k.ords);

        -- The rate: one row per key holds the current minute; a new minute starts from zero.
        within_rate := 0;
        window_at := minute_at;
        IF k.rate > 0 THEN
            SELECT r.window_start, r.admitted INTO window_at, used
              FROM api_key_rate r WHERE r.api_key_id = k.key_id FOR UPDATE;
            IF NOT FOUND THEN
                -- First use of the key: create its row (or find a concurrent batch's), lock it.
                INSERT INTO api_key_rate (api_key_id, window_start, admitted)
                VALUES (k.key_id, minute_at, 0) ON CONFLICT (api_key_id) DO NOTHING;
                SELECT r.window_start, r.admitted INTO window_at, used
                  FROM api_key_rate r WHERE r.api_key_id = k.key_id FOR UPDATE;
            END IF;
            IF window_at < minute_at THEN
                window_at := minute_at;
                used := 0;
            END IF;
            within_rate := least(wanted, greatest(k.rate - used, 0));
            IF within_rate > 0 THEN
                UPDATE api_key_rate
                   SET window_start = window_at, admitted = used + within_rate
                 WHERE api_key_id = k.key_id;
            END IF;
        END IF;
        rate_retry := greatest(1, ceil(extract(epoch FROM
            window_at + interval '1 minute' - at_time)))::integer;

        -- The quota, for the requests within the rate.
        within_quota := 0;
        IF k.quota > 0 AND within_rate > 0 THEN
            SELECT u.accepted INTO used
              FROM api_key_monthly_usage u
             WHERE u.api_key_id = k.key_id AND u.month = utc_month::date FOR UPDATE;
            IF NOT FOUND THEN
                INSERT INTO api_key_monthly_usage (api_key_id, month, accepted)
                VALUES (k.key_id, utc_month::date, 0) ON CONFLICT (api_key_id, month) DO NOTHING;
                SELECT u.accepted INTO used
                  FROM api_key_monthly_usage u
                 WHERE u.api_key_id = k.key_id AND u.month = utc_month::date FOR UPDATE;
            END IF;
            within_quota := least(within_rate, greatest(k.quota - used, 0));
            IF within_quota > 0 THEN
                UPDATE api_key_monthly_usage
                   SET accepted = used + within_quota
                 WHERE api_key_id = k.key_id AND month = utc_month::date;
            END IF;
        END IF;

        -- Outcomes in arrival order: accepted, then refused for quota, then refused for rate.
        i := 0;
        FOREACH pos IN ARRAY k.ords LOOP
            i := i + 1;
            IF i > within_rate THEN
                outcomes[pos] := 'rate';
                retry_after_s[pos] := rate_retry;
            ELSIF i > within_quota THEN
                outcomes[pos] := 'quota';
                retry_after_s[pos] := quota_retry;
            END IF;
        END LOOP;
    END LOOP;

    -- The accepted rows, in arrival order (so their outbox ids follow it too); the batch is
    -- unpacked once for both tables.
    WITH accepted AS MATERIALIZED (
        SELECT b.*
          FROM ROWS FROM (json_to_recordset(p_batch)
                          AS (key_id uuid, event_id uuid, category text, message text,
                              description text, fields jsonb, correlation_id text,
                              received_at timestamptz, topic text, subject text, payload text,
                              headers jsonb))
               WITH ORDINALITY AS b(key_id, event_id, category, message, description, fields,
                                    correlation_id, received_at, topic, subject, payload,
                                    headers, ord)
         WHERE outcomes[b.ord] = 'accepted'
    ), stored AS (
        INSERT INTO events (id, api_key_id, category, message, description, fields,
                            correlation_id, received_at)
        SELECT event_id, key_id, category, message, description, fields, correlation_id,
               received_at
          FROM accepted
    )
    INSERT INTO outbox (event_id, topic, subject, payload, headers, api_key_id)
    SELECT event_id, topic, subject, convert_to(payload, 'UTF8'), headers, key_id
      FROM accepted ORDER BY ord;
END;
$$;

-- Wake the outbox relays (apps/events_api/outbox.py) when rows are committed: one notification
-- per INSERT statement (a whole group-committed batch, or one task change), delivered at commit,
-- and PostgreSQL folds repeats within a transaction into one. The relays also poll, so a
-- notification lost while a relay reconnects only delays its rows by one poll interval.
CREATE FUNCTION events_api_outbox_wake() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM pg_notify('events_api_outbox', '');
    RETURN NULL;
END;
$$;
CREATE TRIGGER outbox_relay_wake AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION events_api_outbox_wake();
