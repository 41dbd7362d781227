"""Trial statistics from the endpoint tables: ``mriproc stats``.

Plain functions on data frames: :func:`prepare_trial` joins ``endpoints.tsv`` with
``participants.tsv``; :func:`analyse_trial` gives the baseline table, change from
baseline, between-arm comparisons and subgroup analyses; :func:`run_stats` reads the
files and writes ``OUT_DIR/mriproc/stats/``.  :func:`simulate_endpoint_table` draws
endpoint tables with a known arm effect for validating the statistics.
"""

from mriproc.stats.analysis import TrialAnalysis, analyse_trial
from mriproc.stats.data import StatsInputError, TrialData, load_trial, prepare_trial
from mriproc.stats.outputs import StatsResult, run_stats
from mriproc.stats.simulation import simulate_endpoint_table

__all__ = [
    "StatsInputError",
    "StatsResult",
    "TrialAnalysis",
    "TrialData",
    "analyse_trial",
    "load_trial",
    "prepare_trial",
    "run_stats",
    "simulate_endpoint_table",
]
