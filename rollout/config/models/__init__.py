"""Pydantic models of every file a user writes. Frozen; unknown keys are errors."""

from rollout.config.models.checks import (
    Check,
    CommandCheck,
    CommandStep,
    HttpCheck,
    PlaybookCheck,
    PlaybookStep,
    TcpCheck,
)
from rollout.config.models.plant import PlantConfig, Window
from rollout.config.models.project import CodebaseConfig, LayerConfig, OverlayPolicy, ProjectConfig, StateConfig
from rollout.config.models.strategy import Selector, StrategyConfig, WaveConfig

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
    "StateConfig",
    "StrategyConfig",
    "TcpCheck",
    "WaveConfig",
    "Window",
]
