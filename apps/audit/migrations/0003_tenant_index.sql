-- The audit query API (GET /api/v1/audit, served by events-api) reads one tenant's entries in
-- (occurred_at, event_id) order, optionally for one subject. The tenant is the envelope's
-- `data.tenant` (events-api writes it; the reminders app copies it), so an expression index
-- serves it without a new column or a rewrite of the table.
CREATE INDEX IF NOT EXISTS audit_log_tenant_time_idx
    ON audit_log ((envelope -> 'data' ->> 'tenant'), occurred_at, event_id);
CREATE INDEX IF NOT EXISTS audit_log_tenant_subject_idx
    ON audit_log ((envelope -> 'data' ->> 'tenant'), subject, occurred_at, event_id);
