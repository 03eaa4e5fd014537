"""Projects: sources of playbooks and manifests (a directory on the portal's machine or a Git
repository), synced as jobs (project.sync), with the synced revision recorded; other apps get a
read-only working copy of a pinned revision through services.checkout()."""
