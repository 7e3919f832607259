"""Celery adapter: app configuration and task wrappers around the job service."""
