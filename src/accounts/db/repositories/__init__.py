"""Repositories: every SQL statement the service issues lives in this package."""
