"""Service layer shared by the HTTP (`api/`) and Celery (`worker/`) adapters.

Settings, database access, the one repository module, the artifact store and the job
service functions live here. Nothing in this package imports FastAPI or Celery.
"""
