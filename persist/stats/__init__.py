"""Statistics of the analysis phase: rank correlations with permutation p-values and intervals chosen
by a stated small-n policy (bootstrap or Fisher z), partial correlations by rank
residuals, family-wise corrections, influence, rank regression, a mixed-effects check for seeded
studies and leave-one-architecture-out prediction, all driven by a declarative :class:`AnalysisSpec`.

No tracking and no figures here: ``run_analysis`` takes a DataFrame (one row per run or per
architecture) and returns plain DataFrames; persist/phases/analysis.py fetches the table, asks
persist/plots/stats.py for the figures and logs the outputs.
"""

from persist.stats.analysis import AnalysisResult, run_analysis
from persist.stats.bootstrap import bootstrap_ci
from persist.stats.correlation import Correlation, correlate
from persist.stats.influence import Influence, leave_one_out
from persist.stats.intervals import Interval, confidence_interval, fisher_z_interval
from persist.stats.multiple import adjust_pvalues, correct_families
from persist.stats.permutation import PermutationTest, permutation_matrix, permutation_test
from persist.stats.prediction import PredictionResult, predict_leave_one_out
from persist.stats.regression import rank_regression, variance_inflation
from persist.stats.report import headline_table, write_report
from persist.stats.spec import (
                                AnalysisSpec,
                                Family,
                                Hypothesis,
                                PredictionSpec,
                                Regression,
                                Subset,
                                load_spec,
                                spec_from_dict,
)

__all__ = [
    "AnalysisResult", "AnalysisSpec", "Correlation", "Family", "Hypothesis", "Influence", "Interval",
    "PermutationTest", "PredictionResult", "PredictionSpec", "Regression", "Subset", "adjust_pvalues", "bootstrap_ci",
    "confidence_interval", "correct_families", "correlate", "fisher_z_interval", "headline_table", "leave_one_out",
    "load_spec", "permutation_matrix", "permutation_test", "predict_leave_one_out", "rank_regression", "run_analysis",
    "spec_from_dict", "variance_inflation", "write_report",
]
