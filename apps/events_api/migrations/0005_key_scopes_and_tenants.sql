-- API keys get scopes (what a key may do) and a tenant (whose data it sees).
--
-- Scopes: events:write (POST /api/v1/events), events:read (GET /api/v1/events/{id}),
-- tasks:read, tasks:write, audit:read (GET /api/v1/audit). Keys created before this migration
-- keep exactly what they could do (every scope but audit:read); audit:read is only ever granted
-- explicitly (`events-api create-key --scope audit:read`).
--
-- Tenant: the audit trail is served per tenant, so an auditor's key and the keys that write
-- share one tenant name. Existing keys become their own tenant (their name is unique).
ALTER TABLE api_keys ADD COLUMN scopes text[] NOT NULL
    DEFAULT '{events:write,events:read,tasks:read,tasks:write}';
ALTER TABLE api_keys ADD CONSTRAINT api_keys_scopes_known CHECK (
    scopes <@ '{events:write,events:read,tasks:read,tasks:write,audit:read}'::text[]
);
ALTER TABLE api_keys ADD COLUMN tenant text;
UPDATE api_keys SET tenant = name;
ALTER TABLE api_keys ALTER COLUMN tenant SET NOT NULL;
CREATE INDEX api_keys_by_tenant ON api_keys (tenant);
