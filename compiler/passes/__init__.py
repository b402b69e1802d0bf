"""Graph-to-graph passes and the pipeline that orders them."""

from .cse import cse
from .dce import dce
from .fold import constant_fold
from .pipeline import PIPELINE, STAGE_NAMES, optimize, run_pipeline
from .simplify import simplify
from .stabilize import stabilize

__all__ = ["PIPELINE", "STAGE_NAMES", "constant_fold", "cse", "dce", "optimize", "run_pipeline", "simplify",
           "stabilize"]
