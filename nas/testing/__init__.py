"""Test helpers and contract tests for the project and for plug-in authors (needs pytest).

- :mod:`nas.testing.toy`: a toy space and evaluator with known, conflicting objectives, and
  :func:`~nas.testing.toy.toy_job_spec`, a job spec on them;
- :mod:`nas.testing.contracts`: ``SearcherContract``, ``SpaceContract``, ``EvaluatorContract``
  and ``ProxyContract`` to subclass in a plug-in's tests;
- :mod:`nas.testing.tiny_train` and :mod:`nas.testing.nb201`: a seconds-long supernet
  training config and synthetic NAS-Bench-201 tables.
"""

from nas.testing.contracts import EvaluatorContract, ProxyContract, SearcherContract, SpaceContract
from nas.testing.toy import ToyEvaluator, ToySpace, toy_job_spec, toy_metrics

__all__ = [
    "EvaluatorContract",
    "ProxyContract",
    "SearcherContract",
    "SpaceContract",
    "ToyEvaluator",
    "ToySpace",
    "toy_job_spec",
    "toy_metrics",
]
