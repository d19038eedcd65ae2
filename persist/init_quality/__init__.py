"""Initialization quality: predict how well an init trains from the topology of its local landscape.

Five stages, each a plain function of a config and a workdir (see :mod:`persist.init_quality.study`;
:mod:`persist.phases.init_quality` runs, resumes and logs them and draws the figures):
1. (parameter vector, loss) pairs across init schemes, evaluated with vmap;
2. a surrogate loss predictor with group-held-out fidelity;
3. local landscapes around each init (real and surrogate loss), their persistent homology and baselines;
4. training every init for a fixed budget (vectorized over inits) for the quality target;
5. nested-CV prediction of quality from topology against baselines, with an honest report.
"""

from persist.init_quality.config import InitQualityConfig
from persist.init_quality.local_topology import LocalTopologyConfig, local_features
from persist.init_quality.outcomes import InitTrainingConfig, train_inits
from persist.init_quality.prediction import PredictionConfig, score_feature_sets
from persist.init_quality.samples import InitScheme, draw_inits, parse_scheme
from persist.init_quality.study import STAGES, UPSTREAM
from persist.init_quality.surrogate import SurrogateConfig, fit_surrogate
from persist.init_quality.target import TargetNetwork, build_target, load_digits_task

__all__ = [
    "InitQualityConfig",
    "InitScheme",
    "InitTrainingConfig",
    "LocalTopologyConfig",
    "PredictionConfig",
    "SurrogateConfig",
    "TargetNetwork",
    "STAGES",
    "UPSTREAM",
    "build_target",
    "draw_inits",
    "fit_surrogate",
    "load_digits_task",
    "local_features",
    "parse_scheme",
    "score_feature_sets",
    "train_inits",
]
