from django.apps import AppConfig


class ProjectsConfig(AppConfig):
    name = "ops_portal.projects"
    label = "projects"
    verbose_name = "Projects"
