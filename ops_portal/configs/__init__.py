"""Configuration management: templates of files rendered per host, applied over SSH, and drift
reports from scheduled dry runs.

Layering: this app sits above the jobs engine. Applying and checking are jobs (job_actions.py
declares config.apply and config.drift; services.py launches them through jobs.launch).
"""
