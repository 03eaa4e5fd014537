"""Built-in periodic tasks of the projects app (loaded at start-up by core.declarations)."""
from ops_portal.core.periodic import register

register("projects: prune old revisions", "projects.prune_revisions", 3600,
         "Remove working copies of old project revisions (the current one, the 3 latest others and revisions "
         "of jobs unfinished or ended within 7 days are kept).")
