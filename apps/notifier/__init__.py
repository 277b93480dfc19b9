"""notifier: consumes `events` and `tasks` and delivers them to chat and webhook channels."""
