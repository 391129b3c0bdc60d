"""Pydantic models of every file a user writes. Frozen; unknown keys are errors."""

from .checks import Check, CommandCheck, CommandStep, HttpCheck, PlaybookCheck, PlaybookStep, TcpCheck
from .plant import PlantConfig, Window
from .project import CodebaseConfig, LayerConfig, OverlayPolicy, ProjectConfig
from .strategy import Selector, StrategyConfig, WaveConfig

__all__ = [
    "Check",
    "CodebaseConfig",
    "CommandCheck",
    "CommandStep",
    "HttpCheck",
    "LayerConfig",
    "OverlayPolicy",
    "PlantConfig",
    "PlaybookCheck",
    "PlaybookStep",
    "ProjectConfig",
    "Selector",
    "StrategyConfig",
    "TcpCheck",
    "WaveConfig",
    "Window",
]
