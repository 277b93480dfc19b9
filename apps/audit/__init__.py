"""audit: writes every envelope into `audit_log` and archives closed windows to S3."""
