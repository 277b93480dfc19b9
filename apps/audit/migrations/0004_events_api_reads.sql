-- events-api serves the audit trail (GET /api/v1/audit) and whether audit has an event
-- (GET /api/v1/events/{id}, the live stream). Where each app has its own role and schema
-- (deployed envs: apps/db_roles, created before any app migrates), events-api may read exactly
-- audit_log, nothing else of audit's; where one role owns everything (the tests), nothing to do.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'events_api')
       AND current_user <> 'events_api' THEN
        EXECUTE format('GRANT USAGE ON SCHEMA %I TO events_api', current_schema());
        GRANT SELECT ON audit_log TO events_api;
    END IF;
END
$$;
