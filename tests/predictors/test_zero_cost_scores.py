"""Zero-cost score files and caches: read back as cheap metrics, each arch scored once."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from nas.core.config import ConfigError
from nas.core.space import create_space
from nas.evaluators import build_evaluator
from nas.testing.nb201 import write_nb201_tables
from predictors.zero_cost_scores import ProxyScoreCache, ScoreFile, proxy_metric


def test_jsonl_from_proxy_score_and_csv_read_alike(tmp_path: Path) -> None:
    space = create_space("nb201")
    a, b = space.from_index(10), space.from_index(2000)
    jsonl = tmp_path / "scores.jsonl"
    rows = [
        {"index": 10, "arch": space.to_string(a), "accuracy": 90.0, "scores": {"meco": 5.0, "synflow": 1e30},
         "seconds": {"meco": 0.1}},
        {"index": 2000, "arch": space.to_string(b), "accuracy": 80.0, "scores": {"meco": -2.0, "synflow": "nan"},
         "seconds": {"meco": 0.1}},
    ]  # fmt: skip
    jsonl.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    csv = tmp_path / "scores.csv"
    csv.write_text(f"arch,index,meco,synflow\n{space.to_string(a)},10,5.0,1e30\n{space.to_string(b)},2000,-2.0,nan\n")
    for path in (jsonl, csv):
        scores = ScoreFile(path, space)
        assert scores.proxies == ("meco", "synflow") and len(scores) == 2
        got = scores.lookup([a, b, space.from_index(3)])
        assert got[0] == {"zc_meco": 5.0, "zc_synflow": 1e30}
        assert got[1]["zc_meco"] == -2.0 and math.isnan(got[1]["zc_synflow"])
        assert all(math.isnan(v) for v in got[2].values())  # not in the file
    assert ScoreFile(jsonl, space, ["meco"]).metrics == ("zc_meco",)
    assert proxy_metric("meco") == proxy_metric("zc_meco") == "zc_meco"


def test_bad_score_files_are_clear_errors_that_do_not_quote_content(tmp_path: Path) -> None:
    space = create_space("nb201")
    arch = space.to_string(space.from_index(1))
    cases = {
        "missing.jsonl": None,
        "notjson.jsonl": "secret-token-123\n",
        "badarch.jsonl": json.dumps({"arch": "secret-token-123", "scores": {"meco": 1}}) + "\n",
        "badnumber.csv": f"arch,meco\n{arch},secret-token-123\n",
        "badheader.csv": f"arch,password=secret-token-123\n{arch},x\n",
        "badkey.jsonl": json.dumps({"arch": arch, "scores": {"secret-token-123": "x"}}) + "\n",
        "nul.csv": f"arch,meco\n{arch},1\x00secret-token-123\n",
        "hugefield.csv": f"arch,meco\n{arch},{'9' * 200_000}secret-token-123\n",
        "empty.csv": "arch,meco\n",
    }
    messages = {
        "missing.jsonl": "not found",
        "notjson.jsonl": "line 1: invalid JSON",
        "badarch.jsonl": "line 1: no valid nb201 arch",
        "badnumber.csv": "line 2: column 2 is not a number",
        "badheader.csv": "line 2: column 2 is not a number",
        "badkey.jsonl": "line 1: score 1 is not a number",
        "nul.csv": "not a readable score file|line 2: column 2 is not a number",  # Python < 3.11: csv.Error
        "hugefield.csv": "not a readable score file",
        "empty.csv": "holds no rows",
    }
    for name, text in cases.items():
        path = tmp_path / name
        if text is not None:
            path.write_text(text)
        with pytest.raises(ValueError, match=messages[name]) as info:
            ScoreFile(path, space)
        assert "secret-token-123" not in str(info.value)
    good = tmp_path / "good.csv"
    good.write_text(f"arch,meco,secret-token-123\n{arch},1.0,2.0\n")
    with pytest.raises(ValueError, match=r"no scores for \['synflow'\]; it has \['meco'\].*nas proxy score") as info:
        ScoreFile(good, space, ["synflow"])
    assert "secret-token-123" not in str(info.value)


def test_tabular_evaluator_offers_scores_as_cheap_metrics(tmp_path: Path) -> None:
    space = create_space("nb201")
    acc, lat = write_nb201_tables(tmp_path, space)
    scores = tmp_path / "scores.csv"
    archs = [space.from_index(i) for i in (5, 6)]
    scores.write_text("arch,meco,naswot\n" + "".join(f"{space.to_string(a)},{i}.5,{-i}\n" for i, a in enumerate(archs)))
    spec = {"kind": "tabular", "accuracy_csv": str(acc), "latency_csv": str(lat), "devices": ["cpu"],
            "zero_cost_scores": str(scores), "proxies": ["meco"]}  # fmt: skip
    evaluator = build_evaluator(spec, space)
    assert evaluator.cheap_metrics == ("latency_ms@cpu", "zc_meco")  # type: ignore[attr-defined]
    assert "zc_meco" in evaluator.metrics and "zc_naswot" not in evaluator.metrics
    cheap = evaluator.evaluate_cheap(archs)  # type: ignore[attr-defined]
    full = evaluator.evaluate(archs)
    assert [c["zc_meco"] for c in cheap] == [f["zc_meco"] for f in full] == [0.5, 1.5]
    with pytest.raises(ConfigError, match=r"evaluator.zero_cost_scores: .*no scores for \['grasp'\]"):
        build_evaluator({**spec, "proxies": ["grasp"]}, space)
    with pytest.raises(ConfigError, match=r"evaluator.proxies: .*give evaluator.zero_cost_scores"):
        build_evaluator({k: v for k, v in spec.items() if k != "zero_cost_scores"}, space)


def test_score_cache_scores_each_arch_once_and_persists(tmp_path: Path) -> None:
    space = create_space("nb201")
    calls: list[str] = []

    def score(arch):
        calls.append(arch.arch_id)
        return {"meco": float(len(calls)), "synflow": math.nan, "other": 1.0}

    path = tmp_path / "cache.jsonl"
    cache = ProxyScoreCache(space, ["meco", "synflow"], score, path)
    a, b = space.from_index(1), space.from_index(2)
    first = cache.lookup([a, b, a])
    assert calls == [a.arch_id, b.arch_id] and first[0] == first[2] and first[1]["zc_meco"] == 2.0
    assert math.isnan(first[1]["zc_synflow"])
    again = ProxyScoreCache(space, ["meco", "synflow"], score, path)  # a later job reads the file
    assert again.lookup([b])[0]["zc_meco"] == 2.0 and len(calls) == 2
    assert ScoreFile(path, space).lookup([a])[0]["zc_meco"] == 1.0
    more = ProxyScoreCache(space, ["meco", "zico"], score, path)  # a proxy the file lacks: scored anew
    more.lookup([a])
    assert len(calls) == 3


def test_gzip_compressed_score_files(tmp_path: Path) -> None:
    import gzip

    space = create_space("nb201")
    arch = space.to_string(space.from_index(7))
    (tmp_path / "s.csv.gz").write_bytes(gzip.compress(f"arch,meco\n{arch},3.0\n".encode()))
    (tmp_path / "s.jsonl.gz").write_bytes(
        gzip.compress((json.dumps({"arch": arch, "scores": {"meco": 3.0}}) + "\n").encode())
    )
    for name in ("s.csv.gz", "s.jsonl.gz"):
        assert ScoreFile(tmp_path / name, space).lookup([space.from_index(7)]) == [{"zc_meco": 3.0}]
    (tmp_path / "broken.csv.gz").write_bytes(b"not gzip at all")
    with pytest.raises(ValueError, match="not a readable score file"):
        ScoreFile(tmp_path / "broken.csv.gz", space)


def test_admission_checks_proxy_settings_against_the_evaluators_scores(tmp_path: Path) -> None:
    """`nas search`/the service admit a spec whose searcher uses the evaluator's scores, and refuse
    one naming a proxy the evaluator does not offer, before any job exists."""
    from nas.admission import admit_job

    space = create_space("nb201")
    acc, lat = write_nb201_tables(tmp_path, space)
    scores = tmp_path / "scores.csv"
    scores.write_text("arch,meco\n" + "".join(f"{space.to_string(space.from_index(i))},{i}\n" for i in range(50)))
    spec = {
        "space": {"name": "nb201"},
        "evaluator": {
            "kind": "tabular",
            "accuracy_csv": str(acc),
            "latency_csv": str(lat),
            "devices": ["cpu"],
            "zero_cost_scores": str(scores),
        },
        "objectives": [{"metric": "accuracy", "direction": "max"}, {"metric": "latency_ms@cpu", "direction": "min"}],
        "searcher": {"kind": "predictor", "settings": {"proxy_features": ["meco"], "warm_start": "meco"}},
    }
    admit_job(spec)
    spec["searcher"]["settings"]["proxy_features"] = ["synflow"]
    with pytest.raises(ConfigError, match=r"searcher.settings: .*\['zc_synflow'\].*it offers \['zc_meco'\]"):
        admit_job(spec)
