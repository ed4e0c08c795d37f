"""The scheduler: filter plugins, then weighted score plugins, over a frozen snapshot.

    placements = schedule(pods, snapshot, SchedulerConfig())

See registry.py for the plugin set and its order, types.py for the inputs.
"""

from ..model import Taint
from .explain import describe, unschedulable, verdicts
from .framework import Placement, Rejection, ScoreCard, Verdict, schedule, select
from .registry import DEFAULT_WEIGHTS, FILTERS, SCORERS
from .types import (
                    BoundPod,
                    LabelSelector,
                    NodeSelectorTerm,
                    PodAffinityTerm,
                    PreferredSchedulingTerm,
                    Requirement,
                    SchedHost,
                    SchedPod,
                    SchedulerConfig,
                    Snapshot,
                    Toleration,
                    TopologySpreadConstraint,
                    WeightedPodAffinityTerm,
)

__all__ = [
    "BoundPod", "DEFAULT_WEIGHTS", "FILTERS", "LabelSelector", "NodeSelectorTerm", "Placement",
    "PodAffinityTerm", "PreferredSchedulingTerm", "Rejection", "Requirement", "SCORERS", "SchedHost",
    "SchedPod", "SchedulerConfig", "ScoreCard", "Snapshot", "Taint", "Toleration",
    "TopologySpreadConstraint", "Verdict", "WeightedPodAffinityTerm", "describe", "schedule", "select",
    "unschedulable", "verdicts",
]
