"""Who may read and do what: accounts with roles, API tokens, and the audit log."""

from accounts.store import Account, AccountError, Accounts, allows

__all__ = ["Account", "AccountError", "Accounts", "allows"]
