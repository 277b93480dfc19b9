"""Per-app database roles: each app logs in as its own role and owns only its own schema."""
