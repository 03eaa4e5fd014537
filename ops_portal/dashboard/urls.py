from django.urls import path

from . import views

app_name = "dashboard"
urlpatterns = [path("", views.home, name="home"), path("nav/counts/", views.nav_counts, name="nav_counts"),
               path("search/", views.search_page, name="search"),
               path("dashboard/fleet.json", views.fleet_data, name="fleet_data")]
