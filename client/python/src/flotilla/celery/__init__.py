"""The Celery placeholder."""
