"""Alembic migrations (``accounts migrate`` runs them)."""
