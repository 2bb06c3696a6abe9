"""FlowSOM-style population discovery across samples and a cross-check of gating.

Public API (arrays on the transformed scale; percentages 0-100 of the clustered population):

* :func:`cluster_samples` / :class:`SOMClusterer` — one shared SOM on a per-sample-balanced subsample,
  consensus metaclusters, every event mapped (:class:`ClusteringResult`).
* :class:`PhenotypeTable`, :func:`load_phenotypes`, :func:`estimate_thresholds`, :func:`annotate` — name
  clusters after populations (``docs/architecture.md`` names) or ``"unassigned"``.
* :func:`metacluster_abundance`, :func:`population_abundance`, :func:`agreement_table`,
  :func:`differential_abundance` — tidy tables.
* :func:`analyse` (in memory) and :func:`run_clustering` (cohort stage over a results store, writes
  ``OUT/clustering/``).
"""
from .abundance import Annotation, annotate, metacluster_abundance, metacluster_table, node_table, population_abundance
from .agreement import agreement_summary, agreement_table
from .differential import DA_TESTS, differential_abundance
from .model import ClusteringResult, SOMClusterer, cluster_samples
from .params import ClusterParams, make_params, parse_grid
from .phenotype import DEFAULT_PHENOTYPES, UNASSIGNED, PhenotypeTable, load_phenotypes, parse_phenotype
from .thresholds import Thresholds, estimate_thresholds, load_thresholds, thresholds_from_gates
from .stage import ClusteringRun, analyse, load_population_events, run_clustering

__all__ = [
    "Annotation", "ClusterParams", "ClusteringResult", "ClusteringRun", "DA_TESTS", "DEFAULT_PHENOTYPES",
    "PhenotypeTable", "SOMClusterer", "Thresholds", "UNASSIGNED", "agreement_summary", "agreement_table",
    "analyse", "annotate", "cluster_samples", "differential_abundance", "estimate_thresholds",
    "load_phenotypes", "load_population_events", "load_thresholds", "thresholds_from_gates", "make_params", "metacluster_abundance", "metacluster_table",
    "node_table", "parse_grid", "parse_phenotype", "population_abundance", "run_clustering",
]
