"""The ops portal: containers, hosts and processes from one dashboard, API and audit trail."""
from .celery import app as celery_app

__all__ = ("celery_app",)
