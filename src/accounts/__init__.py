"""Accounts: a user-accounts service with a REST and a GraphQL API over one service layer."""

__version__ = "0.1.0"
