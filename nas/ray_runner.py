"""Trials in Ray workers through Ray Tune: a Tune ``Searcher`` adapter over our ask/tell searchers.

The evaluator is put into Ray's object store once (``tune.with_parameters``), so a
supernet is shipped to each worker process once, not reloaded per trial. Every
trial reports its metrics, or the error its evaluation raised, as a JSON string;
a worker that dies is reported by Tune and recorded as a failed trial. Tune's own
failures never stop the job. Local Ray by default; ``ray_address`` joins a cluster.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
from pathlib import Path
from typing import Any

from ray.tune.search import Searcher as TuneSearcher

from nas.core.arch import Arch
from nas.core.evaluator import Evaluator
from nas.job import JobSpec
from nas.ray_address import RayConnectionError, check_ray_address
from nas.searchers import Searcher, Trial
from nas.trials import TrialRecorder, evaluate_safely

logger = logging.getLogger(__name__)

RESULT_KEY = "nas_result"


def _trainable(config: dict[str, Any], evaluator: Evaluator | None = None, objectives: Any = None) -> None:
    """Evaluates one arch in a Ray worker and reports ``{RESULT_KEY: json}``."""
    import socket

    from ray import tune

    arch = Arch.from_canonical(config["space_id"], config["arch"])
    assert evaluator is not None
    metrics, error = evaluate_safely(evaluator, [arch], objectives)[0]
    worker = f"{socket.gethostname()}:{os.getpid()}"
    tune.report({RESULT_KEY: json.dumps({"metrics": metrics, "error": error, "worker": worker})})


class NASSearcher(TuneSearcher):
    """Tune's view of our searcher: ``suggest`` asks one trial, ``on_trial_complete`` tells it."""

    def __init__(self, searcher: Searcher, recorder: TrialRecorder, limit: int | None) -> None:
        super().__init__(metric=None, mode=None)
        self._nas, self._recorder, self.limit = searcher, recorder, limit
        self.queue: list[Trial] = sorted(searcher.pending(), key=lambda t: t.trial_id)
        self.ids: dict[str, int] = {}
        self.suggested = 0

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles its search algorithm for experiment checkpoints; ours lives in the
        # job store (resume rebuilds it from there), so only plain fields go along.
        return {k: v for k, v in self.__dict__.items() if k not in ("_nas", "_recorder")}

    def save_to_dir(self, checkpoint_dir: str, session_str: str = "default") -> None:
        """Nothing to save: the job store holds every trial."""

    def restore_from_dir(self, checkpoint_dir: str) -> None:
        """Resume goes through ``nas resume``, which rebuilds the searcher from the store."""

    def get_state(self) -> dict[str, Any]:
        return {"suggested": self.suggested}

    def set_state(self, state: dict[str, Any]) -> None:
        self.suggested = int(state.get("suggested", 0))

    def set_search_properties(self, metric: Any, mode: Any, config: Any, **spec: Any) -> bool:
        return True

    # Tune's own annotation omits the FINISHED string its docs tell searchers to return.
    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:  # type: ignore[override]
        if (
            self._recorder.lease_lost
            or self._recorder.budget.exhausted()
            or (self.limit is not None and self.suggested >= self.limit)
        ):
            return TuneSearcher.FINISHED
        trial = self.queue.pop(0) if self.queue else None
        if trial is None:
            asked = self._nas.ask(1)
            if not asked:
                return TuneSearcher.FINISHED
            trial = asked[0]
        self._recorder.started([trial], worker="ray")
        self.ids[trial_id] = trial.trial_id
        self.suggested += 1
        return {"space_id": trial.arch.space_id, "arch": trial.arch.to_dict(), "nas_trial_id": trial.trial_id}

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        ours = self.ids.pop(trial_id, None)
        if ours is None:
            return
        payload = json.loads(result[RESULT_KEY]) if result and RESULT_KEY in result else None
        if payload is None:
            self._recorder.finished(ours, (None, "Ray trial errored before reporting (worker crash?); see Ray logs"))
        else:
            self._recorder.finished(ours, (payload["metrics"], payload["error"]), worker=payload["worker"])


RAY_RESULTS_ENV = "NAS_RAY_RESULTS"


def ray_results_dir(store_url: str) -> Path:
    """Where Ray Tune writes a job's results (``job-<id>/`` inside): ``$NAS_RAY_RESULTS``, else
    ``ray/`` beside a SQLite store's file (``runs/ray`` for the default store), else ``runs/ray``
    under the working directory. Absolute, as Ray needs it."""
    from sqlalchemy.engine import make_url

    given = os.environ.get(RAY_RESULTS_ENV)
    if given:
        return Path(given).resolve()
    url = make_url(store_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        return Path(url.database).resolve().parent / "ray"
    return Path("runs", "ray").resolve()


def ray_init(address: str | None) -> None:
    """``ray.init`` with its failures as one line naming the fix (address, token)."""
    import ray

    if address:
        check_ray_address(address)
    # A local Ray announces that it turned token authentication on (a good default, nothing for
    # the user to do): kept out of the job's output.
    notice = logging.getLogger("ray._private.authentication.authentication_token_setup")
    quiet = _DropMessage("Token authentication is enabled for this Ray cluster")
    notice.addFilter(quiet)
    try:
        if address:
            _token_mode_when_a_token_is_here()
            ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
        else:
            ray.init(include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
    except Exception as exc:
        text = f"{type(exc).__name__}: {exc}"
        chain: list[str] = []
        cause = exc.__cause__ or exc.__context__
        while cause is not None and len(chain) < 5:  # ray.init hides the reason in its causes
            chain.append(str(cause))
            cause = cause.__cause__ or cause.__context__
        if any(w in t for t in [text, *chain] for w in ("InvalidAuthToken", "AuthenticationError", "auth token")):
            have = ray_token_here()
            raise RayConnectionError(
                f"the Ray cluster at {address or 'this machine'} requires a token and "
                + (f"refused the one in {have}" if have else "this machine has none")
                + ": run `ray get-auth-token` on the head and give its output here as RAY_AUTH_TOKEN=... "
                "(or in a file named by RAY_AUTH_TOKEN_PATH, or ~/.ray/auth_token)"
            ) from None
        raise RayConnectionError(
            f"Ray could not start or connect ({text.splitlines()[0][:300]}); check --ray-address"
        ) from None
    finally:
        notice.removeFilter(quiet)


def ray_token_here() -> str | None:
    """Where this machine has a Ray token (``$RAY_AUTH_TOKEN``, ``$RAY_AUTH_TOKEN_PATH`` or
    ``~/.ray/auth_token``, in Ray's order), or None."""
    if os.environ.get("RAY_AUTH_TOKEN"):
        return "$RAY_AUTH_TOKEN"
    path = os.environ.get("RAY_AUTH_TOKEN_PATH") or str(Path.home() / ".ray" / "auth_token")
    return path if Path(path).is_file() else None


def _token_mode_when_a_token_is_here() -> None:
    """``ray start --head`` (Ray >= 2.59) turns token authentication on, but a client given the
    head's address sends no token unless ``RAY_AUTH_MODE=token``: it then retried for 20 s with a
    warning a second before failing (issue 27, finding 4). With a token here and no mode chosen,
    send it (a cluster without authentication accepts such a client too)."""
    if os.environ.get("RAY_AUTH_MODE") or not ray_token_here():
        return
    try:  # what `ray.init()` does for a local cluster: the mode, and Ray's cached config refreshed
        from ray._private.authentication.authentication_token_setup import (
            maybe_enable_token_auth_if_token_available,
        )
    except ImportError:  # another Ray version: the environment variable is the documented switch
        os.environ["RAY_AUTH_MODE"] = "token"
    else:
        maybe_enable_token_auth_if_token_available(warn_if_disabled=False)


class _DropMessage(logging.Filter):
    def __init__(self, start: str) -> None:
        super().__init__()
        self.start = start

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.getMessage()).startswith(self.start)


def run_with_ray(
    evaluator: Evaluator,
    searcher: Searcher,
    recorder: TrialRecorder,
    spec: JobSpec,
    ray_address: str | None,
    stop_after: int | None,
) -> None:
    import ray
    from ray import tune

    if not ray.is_initialized():
        ray_init(ray_address)
    budget = recorder.budget
    pending = len(searcher.pending())
    remaining = budget.remaining_evaluations()
    samples = -1 if remaining is None else remaining
    if stop_after is not None:
        samples = stop_after if samples < 0 else min(samples, stop_after)
    if samples == 0 and not pending:
        return
    trainable = tune.with_resources(
        tune.with_parameters(_trainable, evaluator=evaluator, objectives=spec.objective_list),
        {"cpu": spec.cpus_per_trial},
    )
    storage = str(ray_results_dir(recorder.store.connection_url))
    logger.debug("Ray Tune writes its results under %s", storage)
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=NASSearcher(searcher, recorder, stop_after),
            num_samples=samples,
            max_concurrent_trials=spec.parallelism,
            time_budget_s=budget.remaining_time(),
            reuse_actors=True,  # one worker process evaluates many trials: the evaluator loads once
        ),
        run_config=tune.RunConfig(
            name=f"job-{recorder.job_id}",
            storage_path=storage,
            verbose=0,
            failure_config=tune.FailureConfig(max_failures=0, fail_fast=False),
        ),
    )
    # Ray Tune prints a configuration table and a TensorBoard hint to stdout whatever its verbosity:
    # shown with `nas -v` (debug logging) only; the progress bar and our log lines say what matters.
    shown = logging.getLogger("nas").isEnabledFor(logging.DEBUG) or logger.isEnabledFor(logging.DEBUG)
    with contextlib.nullcontext() if shown else contextlib.redirect_stdout(io.StringIO()):
        tuner.fit()
