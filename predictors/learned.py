"""Learned accuracy and latency predictors behind one interface: MLP ensemble, Gaussian process,
ridge, GBM, and the ``latency`` kind.

A predictor knows its target metric. One of a latency (``latency_ms@...``) gets cost features
next to the arch encoding: MACs and parameters (their values and logarithms) from the space's
static config, and, with a latency table, the table's sum and its sums per op kind and width
(stage). Latency adds up over the layers a network runs, so the ``latency`` kind (the default
for latency targets) is a family of linear models — least squares, least relative squares,
Huber, log-linear — on one of the space's runtime views of the features (:class:`SelectedLinear`):
repeated cross-validation on the training archs picks the (view, model) pair with the most
predictions within ±10%.

Features are the space's ``features(arch, encoding)``: its default encoding
(once-for-all style one-hot for ``ofa_mbv3``, the cell summary for ``nb201``) or
another it offers (``space.encodings``). Saving writes JSON only (no pickle): the kind, its settings, the
seed, the space id, library versions and the training data; loading refits
deterministically and checks the refitted predictions against fingerprints
stored at save time, so a model that would predict differently (other library
versions) is refused rather than silently used.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nas.core import registry
from nas.core.arch import Arch
from nas.core.config import short_repr
from nas.core.io import read_json
from nas.core.precision import float_arch, float_space
from nas.core.space import SearchSpace

logger = logging.getLogger(__name__)
FORMAT_VERSION = 2


def _versions() -> dict[str, str]:
    import sklearn

    return {"numpy": np.__version__, "sklearn": sklearn.__version__}


# ------------------------------------------------------------------ kinds (registered by name)
# A kind is ``fn(params, seed) -> list of scikit-learn regressors`` (an ensemble when several;
# ``returns_std`` when the single model predicts its own standard deviation).
EstimatorFactory = Callable[[Mapping[str, Any], int], list[Any]]


def predictor_kinds() -> list[str]:
    """Built-in kinds, then plug-ins (:mod:`nas.core.registry`, entry point group ``hwnas.predictors``)."""
    return registry.names("predictor")


def predictor_kind(kind: str) -> EstimatorFactory:
    try:
        return registry.load("predictor", kind)
    except registry.RegistryError:
        known = ", ".join(predictor_kinds())
        raise ValueError(f"kind: unknown predictor {short_repr(kind)}; choose one of {known}") from None


def ridge(params: Mapping[str, Any], seed: int) -> list[Any]:
    from sklearn.linear_model import Ridge

    return [Ridge(alpha=params.get("alpha", 1.0))]


def gradient_boosting(params: Mapping[str, Any], seed: int) -> list[Any]:
    from sklearn.ensemble import HistGradientBoostingRegressor

    return [HistGradientBoostingRegressor(max_iter=params.get("max_iter", 300), random_state=seed)]


def gaussian_process(params: Mapping[str, Any], seed: int) -> list[Any]:
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel

    # Features are one-hot or small counts: a length scale far below 1 makes every arch
    # unrelated to every other (a white-noise fit), far above 100 makes all alike.
    rbf = RBF(length_scale=params.get("length_scale", 5.0), length_scale_bounds=(0.1, 100.0))
    kernel = ConstantKernel(1.0) * rbf + WhiteKernel(1e-2)
    return [GaussianProcessRegressor(kernel=kernel, normalize_y=True, random_state=seed)]


gaussian_process.returns_std = True  # type: ignore[attr-defined]


class SelectedLinear:
    """The linear latency model that cross-validates best on the training archs (scikit-learn API).

    Candidates are (view, model) pairs. Models (``y`` is the raw, positive latency): ridge least
    squares, ridge on squared relative errors (weights ``1/y^2``), Huber (robust to single bad
    measurements), and ridge on ``log y``. Views are column subsets of the feature row that
    :meth:`set_views` names (a space's alternative latency encodings, each with the cost
    columns; the cost columns alone; all columns); without views, all columns. Each candidate
    is scored over ``repeats`` shuffled ``folds``-fold cross-validations, by ``selection``:
    ``within``, its share of predictions within ±10% (ties: lower mean relative error), or
    ``median``, its median relative error (on NAS-Bench-201's 27 columns ``within`` did as well
    or better on 24). The best is refitted on all archs.
    """

    CANDIDATES = ("least_squares", "relative", "huber", "log_linear")

    def __init__(self, seed: int = 0, folds: int = 5, repeats: int = 3, selection: str = "within") -> None:
        if selection not in ("median", "within"):
            raise ValueError(f"selection: use 'median' or 'within', got {selection!r}")
        self.seed, self.folds, self.repeats, self.selection = seed, folds, repeats, selection
        self.views: dict[str, np.ndarray] | None = None
        self.chosen_: str | None = None
        self.view_: str = "all"
        self.scores_: dict[str, float] = {}

    def set_views(self, views: Mapping[str, Sequence[int]]) -> None:
        """Names column subsets to choose among (``{"pruned": [...], "cost": [...]}``)."""
        self.views = {name: np.asarray(columns, dtype=np.int64) for name, columns in views.items()}

    @staticmethod
    def _fit(name: str, x: np.ndarray, y: np.ndarray) -> Any:
        from sklearn.linear_model import RidgeCV

        alphas = np.logspace(-3, 3, 13)
        ones = np.ones_like(y)  # unit weights: the unweighted fit, on the weighted path all candidates share
        if name == "least_squares":
            return RidgeCV(alphas=alphas).fit(x, y, sample_weight=ones)
        if name == "relative":
            return RidgeCV(alphas=alphas).fit(x, y, sample_weight=1.0 / y**2)
        if name == "huber":
            # Huber's loss by iteratively reweighted ridge (weights 1 inside 1.345 robust scales
            # of the residuals, falling as 1/|r| outside): a single bad measurement loses its pull
            weights = ones
            model = RidgeCV(alphas=alphas).fit(x, y, sample_weight=weights)
            for _ in range(30):
                residual = y - model.predict(x)
                scale = 1.4826 * float(np.median(np.abs(residual - np.median(residual)))) or 1e-12
                ratio = np.abs(residual) / (1.345 * scale)
                new = np.where(ratio <= 1.0, 1.0, 1.0 / np.maximum(ratio, 1e-12))
                if np.allclose(new, weights, atol=1e-4):
                    break
                weights = new
                model = RidgeCV(alphas=alphas).fit(x, y, sample_weight=weights)
            return model
        return RidgeCV(alphas=alphas).fit(x, np.log(y), sample_weight=ones)

    @staticmethod
    def _predict(name: str, model: Any, x: np.ndarray) -> np.ndarray:
        if name == "log_linear":
            return np.asarray(np.exp(model.predict(x)))
        return np.asarray(model.predict(x))

    def _score(self, errors: np.ndarray) -> float:
        if self.selection == "median":
            return -float(np.median(errors))
        return float(np.mean(errors <= 0.10)) - 1e-3 * float(np.mean(np.minimum(errors, 10.0)))

    def fit(self, x: np.ndarray, y: np.ndarray) -> SelectedLinear:
        from sklearn.model_selection import KFold

        y = np.asarray(y, dtype=np.float64)
        if np.any(y <= 0):
            raise ValueError("fit: the latency kind needs positive targets (latencies)")
        views = self.views or {"all": np.arange(x.shape[1])}
        # features in their own units, not standardised: the ridge penalty then bears on the 0/1
        # encoding columns and hardly on MACs/params (millions), a prior that latency follows cost
        folds = min(self.folds, len(y))
        self.scores_ = {}
        for view, columns in views.items():
            xv = x[:, columns]
            for name in self.CANDIDATES:
                errors = []
                for repeat in range(max(1, self.repeats)):
                    predicted = np.zeros_like(y)
                    split = KFold(folds, shuffle=True, random_state=self.seed * 1000 + repeat).split(xv)
                    for train, test in split:
                        predicted[test] = self._predict(name, self._fit(name, xv[train], y[train]), xv[test])
                    errors.append(np.abs(predicted - y) / y)
                self.scores_[f"{view}/{name}"] = self._score(np.concatenate(errors))
        best = max(self.scores_, key=lambda k: self.scores_[k])
        self.view_, self.chosen_ = best.split("/")
        self.columns_ = views[self.view_]
        self.model_ = self._fit(self.chosen_, x[:, self.columns_], y)
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        assert self.chosen_ is not None, "fit first"
        return self._predict(self.chosen_, self.model_, x[:, self.columns_])


def latency_linear(params: Mapping[str, Any], seed: int) -> list[Any]:
    return [
        SelectedLinear(
            seed=seed, folds=params.get("folds", 5), repeats=params.get("repeats", 3),
            selection=params.get("selection", "within"),
        )
    ]  # fmt: skip


latency_linear.raw_target = True  # type: ignore[attr-defined]  # fitted on latencies, not standardised ones


def is_latency(metric: str) -> bool:
    """Whether a metric is a latency (``latency_ms`` or ``latency_ms@DEVICE``)."""
    return metric.startswith("latency")


def mlp_ensemble(params: Mapping[str, Any], seed: int) -> list[Any]:
    from sklearn.neural_network import MLPRegressor

    hidden = tuple(params.get("hidden", (400, 400, 400)))
    return [
        MLPRegressor(
            hidden_layer_sizes=hidden, max_iter=params.get("max_iter", 500), learning_rate_init=params.get("lr", 1e-3),
            alpha=params.get("weight_decay", 1e-4), early_stopping=False, random_state=(seed * 1000 + i) % 2**32,
        )
        for i in range(params.get("ensemble", 5))
    ]  # fmt: skip


class CostFeatures:
    """Cost columns for one space: MACs and params (millions, and their logs) from the static
    config; with a latency table also its sum and its sums per op kind and output width (for the
    elastic spaces, a stage), in the order the largest arch runs them."""

    def __init__(self, space: SearchSpace, latency_table: str | None = None) -> None:
        self.space = space
        self.table: Any = None
        self.names = ["macs_m", "params_m", "log_macs", "log_params"]
        if latency_table is not None:
            from predictors.latency.table import LatencyTable

            self.table = LatencyTable.load(latency_table, space_id=space.space_id)
            self.groups = list(dict.fromkeys(self._group(layer) for layer in space.static_config(space.max_arch())))
            self.names += ["table_ms", *(f"table_ms[{g}]" for g in self.groups), "table_ms[other]"]

    @staticmethod
    def _group(layer: Mapping[str, Any]) -> str:
        return f"{layer['op']}:{layer.get('out_ch', layer.get('out_features', ''))}"

    def __call__(self, arch: Arch) -> np.ndarray:
        from predictors.flops import count_cost
        from predictors.latency.ops import signature

        try:
            layers = self.space.static_config(arch)
        except NotImplementedError:
            raise ValueError(
                f"cost features: space {self.space.space_id} has no static config to count MACs in; "
                "fit with cost_features off"
            ) from None
        cost = count_cost(layers)
        row = [cost.macs / 1e6, cost.params / 1e6, np.log1p(cost.macs), np.log1p(cost.params)]
        if self.table is not None:
            sums = dict.fromkeys([*self.groups, "other"], 0.0)
            for layer in layers:
                entry = self.table.entries.get(signature(layer))
                if entry is None:
                    raise ValueError(f"op {signature(layer)} is not in the latency table; rebuild it for this space")
                group = self._group(layer)
                sums[group if group in sums else "other"] += entry["mean_ms"]
            row += [sum(sums.values()), *sums.values()]
        return np.asarray(row, dtype=np.float64)


@dataclass
class Predictor:
    """An accuracy (or any scalar metric) predictor over one space.

    Args:
        space: The search space of the archs.
        kind: ``mlp`` (ensemble of 5 MLPs; mean and std), ``gp`` (Gaussian process; mean and
            std), ``ridge``, ``gbm`` (gradient-boosted trees) or ``latency`` (cross-validated
            linear latency models); ``None``: ``latency`` for a latency target, else ``mlp``.
        seed: Seed of every random choice of the fit.
        params: Settings passed to the underlying scikit-learn estimator(s).
        encoding: The space's feature encoding, or several joined by ``+`` (``None``: its default;
            for a latency target the space's ``latency_encoding``, else ``onehot``).
        target: The metric it predicts (``accuracy``, ``latency_ms@pixel3``, ...).
        cost_features: MACs/params (and table sums) next to the encoding; ``None``: for latency targets.
        latency_table: A latency table of the space (path) whose sums join the cost features.
        base: Transfer (APQ's quantization-aware predictor): a fitted predictor whose mean this one
            corrects: it fits the residual of its targets over the base's prediction. The base may
            be over this space's float space (a float accuracy predictor under an int8 one: each
            arch is asked without its precisions).
    """

    space: SearchSpace
    kind: str | None = "mlp"
    seed: int = 0
    params: dict[str, Any] = field(default_factory=dict)
    encoding: str | None = None
    target: str = "accuracy"
    cost_features: bool | None = None
    latency_table: str | None = None
    base: Predictor | None = None

    def __post_init__(self) -> None:
        if self.base is not None and self.base.space.space_id not in (
            self.space.space_id,
            float_space(self.space).space_id,
        ):
            raise ValueError(
                f"base: a predictor of {self.base.space.space_id} cannot start one of {self.space.space_id} "
                "(give a predictor of this space or of its float space)"
            )
        if self.kind is None:
            self.kind = "latency" if is_latency(self.target) else "mlp"
        predictor_kind(self.kind)  # a clear error for an unknown kind
        if self.kind is None and self.base is not None:
            self.kind = self.base.kind
        if self.encoding is None and is_latency(self.target):
            # the space's own choice for latency (NB201: op counts and the live summary), else one-hot
            default = "onehot" if "onehot" in self.space.encodings else None
            self.encoding = getattr(self.space, "latency_encoding", default)
        parts: list[str | None] = [part for part in (self.encoding or "").split("+") if part] or [None]
        self.encoding = "+".join(self.space.resolve_encoding(part) for part in parts)
        if self.cost_features is None:
            self.cost_features = is_latency(self.target) or self.latency_table is not None
        self._costs = CostFeatures(self.space, self.latency_table) if self.cost_features else None
        self._models: list[Any] = []
        self._train_archs: list[dict[str, Any]] = []
        self._train_y: list[float] = []

    # ------------------------------------------------------------ fitting
    def _features(self, archs: Sequence[Arch]) -> np.ndarray:
        return np.stack([self.features(a) for a in archs])

    def features(self, arch: Arch | Mapping[str, Any]) -> np.ndarray:
        """The predictor's input row for one arch (for callers of :meth:`predict_features`)."""
        arch = self.space.make(arch)
        assert self.encoding is not None
        row = np.concatenate([self.space.features(arch, part) for part in self.encoding.split("+")]).astype(np.float64)
        return row if self._costs is None else np.concatenate([row, self._costs(arch)])

    def views(self, arch: Arch) -> dict[str, list[int]]:
        """Column subsets of the feature row a latency model chooses among: each of the space's
        ``latency_views`` (alternative encodings, one per kind of runtime) found in the encoding,
        with the cost columns; the cost columns alone; all columns."""
        assert self.encoding is not None
        parts = self.encoding.split("+")
        widths = [len(self.space.features(arch, part)) for part in parts]
        starts = np.cumsum([0, *widths])
        encoded = int(starts[-1])
        cost = list(range(encoded, encoded + (len(self._costs.names) if self._costs is not None else 0)))
        out: dict[str, list[int]] = {}
        for view in getattr(self.space, "latency_views", ()):
            wanted = view.split("+")
            if set(wanted) <= set(parts) and len(wanted) < len(parts):
                spans = [range(starts[parts.index(p)], starts[parts.index(p) + 1]) for p in wanted]
                out[view] = [c for span in spans for c in span] + cost
        if cost:
            out["cost"] = cost
        out["all"] = list(range(encoded + len(cost)))
        return out

    def _estimators(self) -> list[Any]:
        assert self.kind is not None
        return list(predictor_kind(self.kind)(self.params, self.seed))

    def fit(self, archs: Sequence[Arch | Mapping[str, Any]], y: Sequence[float]) -> Predictor:
        """Fits on archs and their targets (at least 4 pairs)."""
        if len(archs) != len(y):
            raise ValueError(f"fit: {len(archs)} archs but {len(y)} targets")
        if len(archs) < 4:
            raise ValueError(f"fit: at least 4 training archs are needed, got {len(archs)}")
        canonical = [self.space.make(a) for a in archs]
        residual = np.asarray(y, dtype=np.float64) - self._base_mean(canonical)
        self._fit_rows(self._features(canonical), residual, self.views(canonical[0]))
        self._train_archs = [a.to_dict() for a in canonical]
        self._train_y = [float(v) for v in y]
        return self

    def _base_mean(self, archs: Sequence[Arch]) -> np.ndarray | float:
        """The base predictor's mean for each arch (0 without a base)."""
        if self.base is None:
            return 0.0
        if self.base.space.space_id != self.space.space_id:
            archs = [float_arch(self.space, a) for a in archs]
        return self.base.predict(archs)[0]

    def fit_features(self, x: np.ndarray, y: Sequence[float]) -> Predictor:
        """Fits on precomputed input rows (a caller's own features, e.g. the arch encoding with
        zero-cost scores beside it); such a fit predicts with :meth:`predict_features` only and
        cannot be saved."""
        if len(x) != len(y):
            raise ValueError(f"fit: {len(x)} rows but {len(y)} targets")
        if len(x) < 4:
            raise ValueError(f"fit: at least 4 training rows are needed, got {len(x)}")
        self._fit_rows(np.asarray(x, dtype=np.float64), y, None)
        self._train_archs, self._train_y = [], []
        return self

    def _fit_rows(self, x: np.ndarray, y: Sequence[float] | np.ndarray, views: dict[str, list[int]] | None) -> None:
        target = np.asarray(y, dtype=np.float64)
        if not np.all(np.isfinite(target)):
            raise ValueError("fit: targets contain NaN or infinity")
        self._mean, self._scale = float(target.mean()), float(target.std() or 1.0)
        if getattr(predictor_kind(self.kind or ""), "raw_target", False):
            self._mean, self._scale = 0.0, 1.0
        self._models = []
        for model in self._estimators():
            if views is not None and hasattr(model, "set_views"):
                model.set_views(views)
            model.fit(x, (target - self._mean) / self._scale)
            self._models.append(model)

    def predict(self, archs: Sequence[Arch | Mapping[str, Any]]) -> tuple[np.ndarray, np.ndarray | None]:
        """Predicted mean per arch, and a standard deviation where the kind has one."""
        if not self._models:
            raise ValueError("predict: the predictor is not fitted")
        canonical = [self.space.make(a) for a in archs]
        mean, std = self.predict_features(self._features(canonical))
        return mean + self._base_mean(canonical), std

    def predict_features(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """:meth:`predict` on precomputed ``space.features`` rows (callers that cache features)."""
        if not self._models:
            raise ValueError("predict: the predictor is not fitted")
        if getattr(predictor_kind(self.kind or ""), "returns_std", False):
            mean, std = self._models[0].predict(x, return_std=True)
            return mean * self._scale + self._mean, std * self._scale
        outputs = np.stack([m.predict(x) for m in self._models]) * self._scale + self._mean
        std = outputs.std(0) if len(self._models) > 1 else None
        return outputs.mean(0), std

    # ------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> Path:
        """Writes the predictor as JSON (training data + settings + fingerprints)."""
        if not self._models:
            raise ValueError("save: fit the predictor first")
        if not self._train_archs:
            raise ValueError("save: a predictor fitted on precomputed features (fit_features) cannot be saved")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.record()))
        return path

    def record(self) -> dict[str, Any]:
        """What :meth:`save` writes (a transfer predictor holds its base's record)."""
        probe = self._train_archs[: min(16, len(self._train_archs))]
        data = {
            "format": FORMAT_VERSION,
            "space_id": self.space.space_id,
            "kind": self.kind,
            "seed": self.seed,
            "params": self.params,
            "encoding": self.encoding,
            "target": self.target,
            "cost_features": self.cost_features,
            "cost_feature_names": None if self._costs is None else self._costs.names,
            "latency_table": self.latency_table,
            "versions": _versions(),
            "archs": self._train_archs,
            "targets": self._train_y,
            "fingerprint": self.predict(probe)[0].tolist(),
        }
        if self.base is not None:
            data["base"] = self.base.record()
        return data

    @classmethod
    def load(cls, path: str | Path, space: SearchSpace | None = None) -> Predictor:
        """Refits a saved predictor; refuses another space or a refit that predicts differently."""
        data = read_json(path, "a predictor file", "fit one with `nas predictor fit`")
        return cls.from_record(data, path, space)

    @classmethod
    def base_from_record(cls, data: Any, path: str | Path, space: SearchSpace) -> Predictor:
        """A base predictor for one of ``space``: fitted on ``space`` itself or on its float space."""
        of_space = data.get("space_id") if isinstance(data, dict) else None
        return cls.from_record(data, path, space if of_space == space.space_id else float_space(space))

    @classmethod
    def from_record(cls, data: Any, path: str | Path, space: SearchSpace | None = None) -> Predictor:
        """:meth:`load` of an already read file (``path`` names it in errors)."""
        from nas.core.space import space_from_id

        if not isinstance(data, dict) or data.get("format") not in (1, FORMAT_VERSION):
            raise ValueError(
                f"{path}: not a predictor file of format 1 or {FORMAT_VERSION}; refit with `nas predictor fit`"
            )
        needed = {"space_id", "kind", "seed", "params", "archs", "targets", "fingerprint"}
        if not needed <= set(data) or not isinstance(data["space_id"], str):
            raise ValueError(f"{path}: not a complete predictor file; refit with `nas predictor fit`")
        if space is None:
            space = space_from_id(data["space_id"])
        elif space.space_id != data["space_id"]:
            raise ValueError(f"{path}: predictor was fitted on another space than {space.space_id!r}")
        encoding = data["encoding"] if data["format"] >= 2 else getattr(space, "format1_encoding", None)
        base = None
        if isinstance(data.get("base"), dict):
            base = cls.base_from_record(data["base"], path, space)
        predictor = cls(
            space, data["kind"], data["seed"], data["params"], encoding, data.get("target", "accuracy"),
            data.get("cost_features", False), data.get("latency_table"), base,
        )  # fmt: skip
        predictor.fit(data["archs"], data["targets"])
        probe = data["archs"][: len(data["fingerprint"])]
        again = predictor.predict(probe)[0]
        if not np.allclose(again, data["fingerprint"], rtol=1e-6, atol=1e-6):
            raise ValueError(
                f"{path}: refitting does not reproduce the saved predictions (saved with {data['versions']}, "
                f"now {_versions()}); refit with `nas predictor fit`"
            )
        return predictor


def evaluate_predictor(
    predictor: Predictor, archs: Sequence[Arch | Mapping[str, Any]], y: Sequence[float]
) -> dict[str, Any]:
    """Kendall tau, Spearman rho, RMSE, MAPE and the share within ±10% on held-out data, next to
    the MACs-only baseline (its ranks, and a least-squares line on MACs fitted to the predictor's
    own training archs)."""
    from scipy.stats import kendalltau, spearmanr

    truth = np.asarray(y, dtype=np.float64)
    mean, _ = predictor.predict(archs)
    out: dict[str, Any] = {
        "n": len(truth),
        "kendall": float(kendalltau(mean, truth).statistic),
        "spearman": float(spearmanr(mean, truth).statistic),
        "rmse": float(np.sqrt(np.mean((mean - truth) ** 2))),
        "mape": float(np.mean(np.abs((mean - truth) / np.where(truth == 0, np.nan, truth))) * 100),
        "within_10pct": within_share(mean, truth),
    }
    try:
        macs = macs_of(predictor.space, archs)
        train_macs = macs_of(predictor.space, predictor._train_archs)
    except NotImplementedError:
        out["macs_baseline"] = None
        return out
    slope, intercept = np.polyfit(train_macs, np.asarray(predictor._train_y), 1)
    out["macs_baseline"] = {
        "kendall": float(kendalltau(macs, truth).statistic),
        "spearman": float(spearmanr(macs, truth).statistic),
        "within_10pct": within_share(slope * macs + intercept, truth),
    }
    return out


def within_share(predicted: np.ndarray, truth: np.ndarray, tolerance: float = 0.10) -> float:
    """Share of predictions within ``tolerance`` relative error of the truth."""
    truth = np.asarray(truth, dtype=np.float64)
    safe = np.where(truth == 0, np.nan, np.abs(truth))
    return float(np.mean(np.abs(np.asarray(predicted) - truth) / safe <= tolerance))


def macs_of(space: SearchSpace, archs: Sequence[Arch | Mapping[str, Any]]) -> np.ndarray:
    """MACs of each arch (``NotImplementedError`` for a space without static configs)."""
    from predictors.flops import count_cost

    return np.array([count_cost(space.static_config(space.make(a))).macs for a in archs], dtype=np.float64)


def arch_of_row(space: SearchSpace, row: Mapping[str, Any], arch_keys: set[str] | None = None) -> Arch:
    """The arch of a data row: an ``arch`` key holding JSON, a mapping or the space's own notation (what
    ``nas trials --csv`` writes), NB201's ``arch_str`` / ``ArchitectureString``, or the arch's keys at top
    level (OFA's ``ks``/``e``/``d``/``r``).

    Raises:
        ValueError: the row names no valid arch of the space.
    """
    if "arch" in row:
        raw = row["arch"]
        if isinstance(raw, str) and not raw.lstrip().startswith("{") and hasattr(space, "from_string"):
            return space.from_string(raw)  # the space's own notation (NB201's |op~0|+...|), as printed
        return space.make(json.loads(raw) if isinstance(raw, str) else raw)
    if "arch_str" in row or "ArchitectureString" in row:
        text = row.get("arch_str") or row.get("ArchitectureString")
        if not hasattr(space, "from_string"):
            raise ValueError(f"space {space.space_id} has no string form")
        return space.from_string(text)
    keys = arch_keys if arch_keys is not None else set(space.max_arch().to_dict())
    return space.make({k: v for k, v in row.items() if k in keys})


def load_dataset_file(path: str | Path, space: SearchSpace, target: str = "accuracy") -> tuple[list[Arch], list[float]]:
    """Archs and one metric from JSONL or CSV.

    JSONL rows: ``{"arch": {...}, "<target>": v}`` or the arch keys at top level (OFA's
    ``ks``/``e``/``d``/``r``). CSV: an ``arch`` column holding JSON or the space's own notation
    (what ``nas trials --csv`` writes), or NB201's
    ``arch_str`` / ``ArchitectureString``, plus the target column. A row may carry any number of
    other metrics (one column per device, say): only the target is read.

    Raises:
        ValueError: naming the file, line and what is wrong.
    """
    import csv

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"data: file {path} not found")
    archs, values = [], []
    arch_keys = set(space.max_arch().to_dict())

    def add(row: Mapping[str, Any], where: str) -> None:
        if target not in row:
            raise ValueError(f"{where}: no {target!r} column/key (keys: {sorted(row)})")
        try:
            arch = arch_of_row(space, row, arch_keys)
            value = float(row[target])
        except (ValueError, TypeError, json.JSONDecodeError) as exc:
            raise ValueError(f"{where}: {exc}") from exc
        archs.append(arch)
        values.append(value)

    if path.suffix == ".csv":
        with path.open(newline="") as fh:
            for line, row in enumerate(csv.DictReader(fh), start=2):
                add(row, f"{path}, line {line}")
    else:
        for line, text in enumerate(path.read_text().splitlines(), start=1):
            if text.strip():
                try:
                    row = json.loads(text)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{path}, line {line}: invalid JSON ({exc})") from exc
                add(row, f"{path}, line {line}")
    if not archs:
        raise ValueError(f"data: {path} holds no rows")
    return archs, values
