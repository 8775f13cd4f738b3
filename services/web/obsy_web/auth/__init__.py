"""Accounts, sessions, API tokens, roles and the login rate limit."""
