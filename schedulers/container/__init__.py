"""The container level: Docker engines, Swarm services and stacks (Docker SDK). Django-free."""
from .engine import EngineClient, EngineError, EngineInfo, EngineSpec, EngineStatus, check, connect, explain, probe

__all__ = ["EngineClient", "EngineError", "EngineInfo", "EngineSpec", "EngineStatus", "check", "connect", "explain",
           "probe"]
