"""Every feature, score and alert of two golden sessions, hashed: a speed-up that moves any output bit fails here.

The goldens' own check holds only alert transitions and counts. An intended numerical change updates these
digests (and says so in its commit).
"""

from __future__ import annotations

import hashlib

import pytest

from streamer.config import Settings
from streamer.offline.analyze import analyze_records, default_inference
from streamer.offline.golden import GOLDENS, session_path
from streamer.sessions.format import read_session

pytestmark = pytest.mark.unit
DIGESTS = {  # sha256 over the JSON of features, then scores, then alerts, in output order
    "mitdb201_af": "ad7d506f9c3d07b6b41160228c01f389f6553405ff5ea4b226d7329402edc09a",
    "bidmc01_icu": "4d86c6ebccd2e83a74669973aa612c3409f2ab5a5eb85f49c34baf9b1f0c80a7",
}


@pytest.mark.parametrize("name", sorted(DIGESTS))
def test_golden_outputs_are_bit_identical(name: str) -> None:
    golden = next(g for g in GOLDENS if g.name == name)
    settings = Settings()
    result = analyze_records(read_session(session_path(golden)), settings, inference=default_inference(settings))
    digest = hashlib.sha256()
    for kind in ("features", "scores", "alerts"):
        for record in getattr(result.output, kind):
            digest.update(record.model_dump_json().encode())
    assert digest.hexdigest() == DIGESTS[name]
