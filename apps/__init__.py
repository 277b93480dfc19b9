"""Bundled event-driven services: events-api (producer), notifier and audit (consumers)."""
