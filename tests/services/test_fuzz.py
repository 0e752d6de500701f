"""API fuzzing with schemathesis against the service's own OpenAPI schema: no 500s, no hangs."""

from __future__ import annotations

import collections

import httpx
from hypothesis import HealthCheck, given, settings

from services.testing import AUTH, Served, toy_job, wait_for_state

EXAMPLES = 150  # across all operations; a bounded run for CI


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
