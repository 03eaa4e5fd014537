"""opsportal: the ops portal's REST API and live job streams from a terminal or a pipeline."""

__version__ = "0.1.0"
