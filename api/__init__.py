"""The HTTP face of finsentry (FastAPI): labels, review queue, alerts, silences, models, health, metrics."""

from api.app import create_app

__all__ = ["create_app"]
