"""Versioned SQL migrations (NNNN_name.sql), applied by `events-api migrate`."""
