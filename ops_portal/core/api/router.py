"""The API's one router; each app's api/urls.py registers its viewsets on it."""
from rest_framework.routers import DefaultRouter

router = DefaultRouter()
