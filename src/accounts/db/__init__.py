"""Database access: engines, the unit of work, repositories (all SQL) and migrations."""
