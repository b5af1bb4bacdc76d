"""FHIR checks shared by the tests: every resource through the kept model library, and references that resolve."""

from __future__ import annotations

from typing import Any

# fhir.resources 8.x validates R4B (4.3.0) and R5; no release that runs on pydantic 2 validates R4 (4.0.1) itself.
# The resources we send (Observation, Device, Patient, DetectedIssue, Bundle) did not change from R4 to R4B.
from fhir.resources.R4B import get_fhir_model_class


def validate_bundle(bundle: dict[str, Any]) -> Any:
    """Parse the Bundle and each entry's resource with its own model class; raises on anything invalid."""
    parsed = get_fhir_model_class("Bundle").model_validate(bundle)
    for entry in bundle["entry"]:
        resource = entry["resource"]
        get_fhir_model_class(resource["resourceType"]).model_validate(resource)
        assert entry["request"]["url"] == f"{resource['resourceType']}/{resource['id']}"
    return parsed


def _references(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["reference"]] if isinstance(node.get("reference"), str) else []
        return own + [r for v in node.values() for r in _references(v)]
    if isinstance(node, list):
        return [r for v in node for r in _references(v)]
    return []


def dangling_references(bundle: dict[str, Any]) -> set[str]:
    """References in the Bundle that no entry of it resolves."""
    present = {f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in bundle["entry"]}
    return {r for e in bundle["entry"] for r in _references(e["resource"])} - present


def resources_of(bundle: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == kind]
