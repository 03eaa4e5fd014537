"""Django-free backends that act on containers, hosts and processes.

Nothing here imports Django: backends take connection parameters and secrets as arguments and
yield events. The portal's apps call them from Celery tasks.
"""
