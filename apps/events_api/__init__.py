"""events-api: accepts events and tasks, publishes them through a transactional outbox."""
