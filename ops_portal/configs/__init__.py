"""Configuration management: templates of files rendered per host, applied over SSH, and drift
reports from scheduled dry runs.

Layering: jobs imports this app (ops_portal.jobs.actions.configs renders and stores through
`rendering` and `drift`); this app never imports ops_portal.jobs at module import time. The few
functions that need the jobs engine (selector validation, launching apply and drift jobs) import
it when they are called, all of them in `services`.
"""
