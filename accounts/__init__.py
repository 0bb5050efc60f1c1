"""Who may read and do what: accounts with roles, API tokens, and the audit log."""

from accounts.store import Account, AccountError, Accounts, TooManyAttempts, allows

__all__ = ["Account", "AccountError", "Accounts", "TooManyAttempts", "allows"]
