"""The analysis spec: which hypotheses are tested, how, and how they are corrected.

Declaring predictors, outcomes and correction families in a file before looking at the
results is the cheapest defence against the forking paths the published PERSIST analysis
took (metric swaps, an ad-hoc Bonferroni family of 10 that left most tests uncorrected).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

import yaml

from persist.errors import ConfigError

METHODS = ("spearman", "kendall", "partial_spearman")
CORRECTIONS = ("holm", "bonferroni", "fdr_bh")
CI_METHODS = ("bca", "percentile", "basic")
P_VALUES = ("permutation", "asymptotic")
AGGREGATES = ("mean", "median", "none")
MISSING = ("error", "skip")
TRANSFORMS = ("rank", "standard")
ALL = "all"


@dataclass(frozen=True)
class Subset:
    """Rows kept when a test is repeated within a group (e.g. CNNs only); ``where`` maps a column to allowed values."""

    name: str
    where: Mapping[str, tuple[Any, ...]]


@dataclass(frozen=True)
class Family:
    """A named set of tests corrected together; an empty selector means "every declared one"."""

    name: str
    predictors: tuple[str, ...] = ()
    outcomes: tuple[str, ...] = ()
    methods: tuple[str, ...] = ()
    subsets: tuple[str, ...] = (ALL,)

    def contains(self, predictor: str, outcome: str, method: str, subset: str) -> bool:
        """Whether one test belongs to this family."""
        return all(
            not allowed or value in allowed
            for value, allowed in (
                (predictor, self.predictors),
                (outcome, self.outcomes),
                (method, self.methods),
                (subset, self.subsets),
            )
        )


@dataclass(frozen=True)
class Hypothesis:
    """A declared primary hypothesis: one test, printed first and answered whatever its result."""

    predictor: str
    outcome: str
    method: str = "spearman"
    subset: str = ALL

    def matches(self, predictor: str, outcome: str, method: str, subset: str) -> bool:
        """Whether one test is this hypothesis."""
        return (self.predictor, self.outcome, self.method, self.subset) == (predictor, outcome, method, subset)


@dataclass(frozen=True)
class Regression:
    """One OLS model on ranks: rank(outcome) ~ 1 + rank(predictors...)."""

    outcome: str
    predictors: tuple[str, ...]


@dataclass(frozen=True)
class PredictionSpec:
    """Leave-one-architecture-out prediction of ``target`` by several named feature sets."""

    target: str
    models: Mapping[str, tuple[str, ...]]
    alphas: tuple[float, ...] = (0.01, 0.1, 1.0, 10.0, 100.0, 1000.0)
    transform: str = "rank"


@dataclass(frozen=True)
class AnalysisSpec:
    """Everything ``run_analysis`` needs besides the table; see analysis/README.md for the YAML form."""

    predictors: tuple[str, ...]
    outcomes: tuple[str, ...]
    covariates: tuple[str, ...] = ()
    label: str = "arch"
    columns: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    methods: tuple[str, ...] | None = None  # default: spearman, kendall, + partial_spearman if covariates
    subsets: tuple[Subset, ...] = ()
    families: tuple[Family, ...] = ()
    corrections: tuple[str, ...] = CORRECTIONS
    p_value: str = "permutation"
    n_permutations: int = 10_000
    n_bootstrap: int = 2_000
    ci_method: str = "bca"
    confidence: float = 0.95
    alpha: float = 0.05
    seed: int = 0
    min_n: int = 5
    aggregate: str = "mean"
    missing_columns: str = "error"
    regressions: tuple[Regression, ...] | None = None
    prediction: PredictionSpec | None = None
    primary: tuple[Hypothesis, ...] = ()

    def __post_init__(self) -> None:
        if self.methods is None:
            default = ("spearman", "kendall", "partial_spearman") if self.covariates else ("spearman", "kendall")
            object.__setattr__(self, "methods", default)
        _validate(self)

    @property
    def subset_names(self) -> tuple[str, ...]:
        """``all`` first, then the declared subsets."""
        return (ALL, *(s.name for s in self.subsets))

    def family_of(self, predictor: str, outcome: str, method: str, subset: str) -> str:
        """The declared family a test belongs to, or "" for an exploratory (uncorrected) test."""
        for fam in self.families:
            if fam.contains(predictor, outcome, method, subset):
                return fam.name
        return ""

    def is_primary(self, predictor: str, outcome: str, method: str, subset: str) -> bool:
        """Whether one test is a declared primary hypothesis."""
        return any(h.matches(predictor, outcome, method, subset) for h in self.primary)

    def rank_regressions(self) -> tuple[Regression, ...]:
        """Declared models, or by default outcome ~ predictor + covariates for each pair."""
        if self.regressions is not None:
            return self.regressions
        if not self.covariates:
            return ()
        return tuple(
            Regression(outcome, (p, *self.covariates))
            for outcome in self.outcomes
            for p in self.predictors
            if p not in self.covariates
        )


def load_spec(path: str | Path) -> AnalysisSpec:
    """Read an analysis spec from YAML; unknown keys and bad values raise a one-line ConfigError."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"analysis spec '{path}' does not exist")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"analysis spec '{path}' is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"analysis spec '{path}' must be a mapping of keys to values")
    return spec_from_dict(raw)


def spec_from_dict(raw: Mapping[str, Any]) -> AnalysisSpec:
    """Build a spec from plain data (the parsed YAML), checking every key."""
    _check_keys(raw, _TOP_KEYS, "analysis spec")
    kw: dict[str, Any] = {}
    for key, value in raw.items():
        kw[key] = _PARSERS.get(key, _scalar)(key, value)
    for required in ("predictors", "outcomes"):
        if required not in kw:
            raise ConfigError(f"analysis spec needs '{required}'")
    return AnalysisSpec(**kw)


# ---------------------------------------------------------------------------------------------
# parsing helpers: each returns the typed value or raises a one-line ConfigError naming the key


def _check_keys(raw: Mapping[str, Any], allowed: tuple[str, ...], where: str) -> None:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where} must be a mapping")
    unknown = [k for k in raw if k not in allowed]
    if unknown:
        raise ConfigError(f"unknown key '{unknown[0]}' in {where}; allowed: {', '.join(allowed)}")


def _names(key: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"'{key}' must be a list of names")
    if len(set(value)) != len(value):
        raise ConfigError(f"'{key}' lists a name twice")
    return tuple(value)


def _scalar(key: str, value: Any) -> Any:
    expected = _SCALAR_TYPES[key]
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, expected) or isinstance(value, bool) is not (expected is bool):
        raise ConfigError(f"'{key}' must be {expected.__name__}, got {value!r}")
    return value


def _columns(key: str, value: Any) -> Mapping[str, str]:
    if value is None:
        value = {}
    if not isinstance(value, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise ConfigError(f"'{key}' must map table column names to analysis names")
    if len(set(value.values())) != len(value):
        raise ConfigError(f"'{key}' maps two columns to the same name")
    return MappingProxyType(dict(value))


def _subsets(key: str, value: Any) -> tuple[Subset, ...]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"'{key}' must map subset names to {{column: [values]}}")
    out = []
    for name, where in value.items():
        if not isinstance(where, Mapping) or not where:
            raise ConfigError(f"subset '{name}' must map at least one column to allowed values")
        values = {col: tuple(v) if isinstance(v, (list, tuple)) else (v,) for col, v in where.items()}
        out.append(Subset(str(name), MappingProxyType(values)))
    return tuple(out)


def _families(key: str, value: Any) -> tuple[Family, ...]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"'{key}' must map family names to selectors")
    out = []
    for name, sel in value.items():
        sel = sel or {}
        _check_keys(sel, ("predictors", "outcomes", "methods", "subsets"), f"family '{name}'")
        out.append(Family(str(name), **{k: _names(f"{name}.{k}", v) for k, v in sel.items()}))
    return tuple(out)


def _regressions(key: str, value: Any) -> tuple[Regression, ...]:
    if not isinstance(value, list):
        raise ConfigError(f"'{key}' must be a list of {{outcome, predictors}}")
    out = []
    for i, item in enumerate(value):
        _check_keys(item, ("outcome", "predictors"), f"regressions[{i}]")
        if "outcome" not in item or "predictors" not in item:
            raise ConfigError(f"regressions[{i}] needs 'outcome' and 'predictors'")
        out.append(Regression(str(item["outcome"]), _names(f"regressions[{i}].predictors", item["predictors"])))
    return tuple(out)


def _prediction(key: str, value: Any) -> PredictionSpec | None:
    if value is None:
        return None
    _check_keys(value, ("target", "models", "alphas", "transform"), "prediction")
    if "target" not in value or "models" not in value:
        raise ConfigError("prediction needs 'target' and 'models'")
    models = value["models"]
    if not isinstance(models, Mapping) or not models:
        raise ConfigError("'prediction.models' must map model names to feature lists")
    kw: dict[str, Any] = {
        "target": str(value["target"]),
        "models": MappingProxyType({str(k): _names(f"prediction.models.{k}", v) for k, v in models.items()}),
    }
    if "alphas" in value:
        alphas = value["alphas"]
        if not isinstance(alphas, list) or not alphas or not all(isinstance(a, (int, float)) and a > 0 for a in alphas):
            raise ConfigError("'prediction.alphas' must be a list of positive numbers")
        kw["alphas"] = tuple(float(a) for a in alphas)
    if "transform" in value:
        kw["transform"] = str(value["transform"])
    return PredictionSpec(**kw)


def _primary(key: str, value: Any) -> tuple[Hypothesis, ...]:
    if not isinstance(value, list):
        raise ConfigError(f"'{key}' must be a list of {{predictor, outcome, method, subset}}")
    out = []
    for i, item in enumerate(value):
        _check_keys(item, ("predictor", "outcome", "method", "subset"), f"primary[{i}]")
        if "predictor" not in item or "outcome" not in item:
            raise ConfigError(f"primary[{i}] needs 'predictor' and 'outcome'")
        out.append(Hypothesis(**{k: str(v) for k, v in item.items()}))
    return tuple(out)


_SCALAR_TYPES: dict[str, type] = {
    "label": str, "p_value": str, "n_permutations": int, "n_bootstrap": int, "ci_method": str,
    "confidence": float, "alpha": float, "seed": int, "min_n": int, "aggregate": str, "missing_columns": str,
}
_PARSERS = {
    "predictors": _names, "outcomes": _names, "covariates": _names, "methods": _names,
    "corrections": _names, "columns": _columns, "subsets": _subsets, "families": _families,
    "regressions": _regressions, "prediction": _prediction, "primary": _primary,
}
_TOP_KEYS = tuple(_PARSERS) + tuple(_SCALAR_TYPES)


# ---------------------------------------------------------------------------------------------
# semantic validation (also runs for specs built in Python)


def _one_of(key: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"'{key}' must be one of {', '.join(allowed)}, got '{value}'")


def _validate(spec: AnalysisSpec) -> None:
    if not spec.predictors or not spec.outcomes:
        raise ConfigError("analysis spec needs at least one name in 'predictors' and in 'outcomes'")
    for m in spec.methods or ():
        _one_of("methods", m, METHODS)
    for c in spec.corrections:
        _one_of("corrections", c, CORRECTIONS)
    _one_of("p_value", spec.p_value, P_VALUES)
    _one_of("ci_method", spec.ci_method, CI_METHODS)
    _one_of("aggregate", spec.aggregate, AGGREGATES)
    _one_of("missing_columns", spec.missing_columns, MISSING)
    if "partial_spearman" in (spec.methods or ()) and not spec.covariates:
        raise ConfigError("'methods' lists partial_spearman but 'covariates' is empty")
    if spec.n_permutations < 1:
        raise ConfigError(f"'n_permutations' must be >= 1, got {spec.n_permutations}")
    if spec.n_bootstrap < 0:
        raise ConfigError(f"'n_bootstrap' must be >= 0 (0 disables CIs), got {spec.n_bootstrap}")
    if not 0 < spec.confidence < 1:
        raise ConfigError(f"'confidence' must lie in (0, 1), got {spec.confidence}")
    if not 0 < spec.alpha < 1:
        raise ConfigError(f"'alpha' must lie in (0, 1), got {spec.alpha}")
    if spec.min_n < 3:
        raise ConfigError(f"'min_n' must be >= 3, got {spec.min_n}")
    overlap = set(spec.outcomes) & (set(spec.predictors) | set(spec.covariates))
    if overlap:
        raise ConfigError(f"'outcomes' and 'predictors'/'covariates' share '{sorted(overlap)[0]}'")
    _validate_references(spec)


def _validate_references(spec: AnalysisSpec) -> None:
    subset_names = spec.subset_names
    if len(set(subset_names)) != len(subset_names):
        raise ConfigError(f"'subsets' must not reuse a name or call one '{ALL}'")
    known = {
        "predictors": set(spec.predictors) | set(spec.covariates),
        "outcomes": set(spec.outcomes),
        "methods": set(spec.methods or ()),
        "subsets": set(subset_names),
    }
    for fam in spec.families:
        for attr, allowed in known.items():
            bad = [v for v in getattr(fam, attr) if v not in allowed]
            if bad:
                raise ConfigError(f"family '{fam.name}' names unknown {attr[:-1]} '{bad[0]}'")
    for i, hyp in enumerate(spec.primary):
        for attr, allowed in (("predictor", known["predictors"]), ("outcome", known["outcomes"]),
                              ("method", known["methods"]), ("subset", known["subsets"])):
            if getattr(hyp, attr) not in allowed:
                raise ConfigError(f"primary[{i}] names undeclared {attr} '{getattr(hyp, attr)}'")
        if hyp.method == "partial_spearman" and hyp.predictor in spec.covariates:
            raise ConfigError(f"primary[{i}] tests '{hyp.predictor}' while controlling for it")
    variables = set(spec.predictors) | set(spec.covariates) | set(spec.outcomes)
    for reg in spec.regressions or ():
        bad = [v for v in (reg.outcome, *reg.predictors) if v not in variables]
        if bad:
            raise ConfigError(f"regression on '{reg.outcome}' names undeclared variable '{bad[0]}'")
    if spec.prediction is not None:
        _one_of("prediction.transform", spec.prediction.transform, TRANSFORMS)
        if "intercept_only" in spec.prediction.models:
            raise ConfigError("'prediction.models' must not define 'intercept_only' (it is always added)")
