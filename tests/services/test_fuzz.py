"""API fuzzing with schemathesis against the service's own OpenAPI schema: no 500s, no hangs."""

from __future__ import annotations

import collections
import time
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings

from services.testing import AUTH, Served, toy_job, wait_for_state

EXAMPLES = 150  # across all operations; a bounded run for CI

# An answer must come in bounded time: a hang or a blow-up with the input's size fails, not the
# speed of a shared 2-core machine (a request answered in 1.02 s under load is not a finding;
# speed is measured in benchmarks/service_load.py).
BOUNDED_S = 5.0


def test_no_server_errors_under_fuzzing(served: Served) -> None:
    import schemathesis

    # a finished job, so that generated ids and queries also hit a real job now and then
    submitted = httpx.post(f"{served.url}/api/jobs", json=toy_job(budget={"evaluations": 6}), headers=AUTH)
    job_id = submitted.json()["job_id"]
    wait_for_state(served.url, job_id, {"done"})
    raw = httpx.get(f"{served.url}/api/openapi.json", headers=AUTH).json()
    post = raw["paths"]["/api/jobs"]["post"]
    assert set(post["requestBody"]["content"]) == {"application/json", "application/yaml"}
    schema = schemathesis.openapi.from_dict(raw)
    seen: list[tuple[str, str, int]] = []

    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(case=schema.as_strategy())
    def fuzz(case: schemathesis.Case) -> None:
        if case.path_parameters and "job_id" in case.path_parameters and len(seen) % 3 == 0:
            case.path_parameters["job_id"] = job_id
        response = case.call(base_url=served.url, headers=AUTH, timeout=20)
        seen.append((case.method, case.path, response.status_code))
        assert response.status_code < 500, (case.method, case.formatted_path, response.status_code, response.text)

    fuzz()

    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(case=schema["/api/jobs"]["POST"].as_strategy())
    def fuzz_submit(case: schemathesis.Case) -> None:  # job specs: JSON objects and YAML strings
        response = case.call(base_url=served.url, headers=AUTH, timeout=20)
        seen.append((case.method, case.path, response.status_code))
        assert response.status_code < 500, (case.media_type, case.body, response.status_code, response.text)

    fuzz_submit()
    counts = collections.Counter(seen)
    statuses = {s for _, _, s in seen}
    assert len(seen) >= 100 and {200, 404, 422} <= statuses, counts  # real answers and real refusals
    assert sum(n for (m, _, _), n in counts.items() if m == "POST") >= 50, counts
    assert httpx.get(f"{served.url}/api/health", timeout=5).status_code == 200


def test_openapi_documents_the_job_spec(served: Served) -> None:
    """``POST /api/jobs``'s body is the job spec's JSON Schema (as `nas spec schema`), every $ref resolving."""
    import json

    from nas.spec_schema import job_schema

    raw = httpx.get(f"{served.url}/api/openapi.json", headers=AUTH).json()
    body = raw["paths"]["/api/jobs"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/JobSpec"}
    components = raw["components"]["schemas"]
    assert set(components["JobSpec"]["properties"]) == set(job_schema()["properties"])
    refs = {r.split("/")[-1] for r in _refs(json.loads(json.dumps(raw)))}
    assert refs <= set(components), refs - set(components)
    assert {"SearcherSpec", "ObjectiveSpec", "BudgetSpec"} <= refs


def _refs(node: object) -> list[str]:
    if isinstance(node, dict):
        return [v for k, v in node.items() if k == "$ref"] + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


MiB = 1 << 20
# characters that drive JSON and YAML scanners into their slow paths: quotes and escapes, brackets,
# YAML indicators (anchors, aliases, tags, block scalars, comments), numbers, whitespace
PATHOLOGICAL = "[]{}\",:\\ \n\t0123456789eE+-.ntruefals#&*!|>?%@`'u"


def _json_values() -> Any:
    from hypothesis import strategies as st

    scalars = (
        st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
        | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=5000)
    )  # fmt: skip
    return st.recursive(scalars, lambda inner: st.lists(inner, max_size=6) | st.dictionaries(
        st.text(max_size=20), inner, max_size=6), max_leaves=60)  # fmt: skip


def test_any_body_is_answered_fast_and_never_with_a_500(served: Served) -> None:
    """Item 5: property-based bodies, 1 MiB of a repeated pathological fragment after any prefix,
    as JSON and YAML: each answered in bounded time (and /api/health meanwhile), never a 500."""
    from hypothesis import strategies as st

    slowest: list[float] = []

    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(prefix=st.text(alphabet=PATHOLOGICAL, max_size=40), fragment=st.text(alphabet=PATHOLOGICAL, min_size=1,
           max_size=6), media=st.sampled_from(["application/json", "application/yaml"]))  # fmt: skip
    def body_of_any_shape(prefix: str, fragment: str, media: str) -> None:
        body = (prefix + fragment * (MiB // len(fragment)))[: MiB - 64].encode("utf-8")[: MiB - 64]
        start = time.perf_counter()
        response = httpx.post(f"{served.url}/api/jobs", content=body, headers={**AUTH, "content-type": media},
                              timeout=30)  # fmt: skip
        slowest.append(time.perf_counter() - start)
        assert response.status_code in (400, 413, 422), (prefix, fragment, media, response.status_code, response.text)

    body_of_any_shape()
    assert max(slowest) < BOUNDED_S, sorted(slowest)[-3:]
    assert httpx.get(f"{served.url}/api/health", timeout=2).status_code == 200


def test_specs_with_large_and_deep_values_get_bounded_answers(served: Served) -> None:
    """Item 5: a valid spec with any JSON value (huge numbers, long strings, nesting) in any of its
    keys is admitted or refused in bounded time (:data:`BOUNDED_S`), never with a 500."""
    from hypothesis import strategies as st

    keys = [("space", "options", "n"), ("space", "options", "k"), ("searcher", "settings", "population"),
            ("evaluator", "options", "fail_when"), ("budget", "evaluations"), ("budget", "wall_time_s"),
            ("name",), ("seed",), ("parallelism",), ("reference", "acc"), ("constraints",), ("objectives",),
            ("searcher", "kind"), ("evaluator", "kind"), ("space", "name"), ("cpus_per_trial",)]  # fmt: skip
    answers: collections.Counter[int] = collections.Counter()

    @settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(where=st.sampled_from(keys), value=_json_values())
    def spec_with(where: tuple[str, ...], value: Any) -> None:
        spec = toy_job(budget={"evaluations": 2})
        node = spec
        for part in where[:-1]:
            node = node.setdefault(part, {}) if isinstance(node.get(part, {}), dict) else {}
        node[where[-1]] = value
        start = time.perf_counter()
        response = httpx.post(f"{served.url}/api/jobs", json=spec, headers=AUTH, timeout=30)
        elapsed = time.perf_counter() - start
        answers[response.status_code] += 1
        assert response.status_code in (202, 400, 413, 422, 429), (where, response.status_code, response.text)
        assert elapsed < BOUNDED_S, (where, elapsed)

    spec_with()
    assert answers[422] > 0, answers
