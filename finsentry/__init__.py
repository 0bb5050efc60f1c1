"""finsentry: real-time monitor of financial news and comments."""

__version__ = "0.1.0"
