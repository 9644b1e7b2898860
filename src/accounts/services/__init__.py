"""Use cases: the one place business rules live. No HTTP, no GraphQL, no SQL here."""
