"""Sentiment history that outlives Redis: hourly roll-ups per scope key in SQL, for the trend charts."""

from trends.rollups import Figures, Item, Rollups

__all__ = ["Figures", "Item", "Rollups"]
