"""Small manifest builders, one module per concern. Each returns plain dicts (one per object)."""
