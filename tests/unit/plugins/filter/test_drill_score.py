# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The drill_score filter: the record as text or as a list; bad input is a filter error."""
from __future__ import annotations

import json

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.sre.incident.plugins.filter.drill_score import FilterModule


def test_filter_reads_the_record_text():
    score = FilterModule().filters()["drill_score"]
    text = json.dumps(dict(type="opened", ts="2027-01-15T08:00:05Z", data=dict(severity="P0", id="INC-9")))
    line = score([dict(t=1800000000.0, ok=True, why=None)], injected_at=1800000000.0, events=text, playbook="p0_recover.yml")
    assert line["respond_s"] == 5.0 and line["incident_id"] == "INC-9" and line["result"] == "not recovered"
    assert line["detect_s"] is None   # the watch saw nothing
    skipped = score([], injected_at=None, events=[], playbook="triage.yml", applicable=False)
    assert skipped["result"] == "not applicable"
    with pytest.raises(AnsibleFilterError, match="drill_score"):
        score([dict(ok=True)], injected_at=1.0, events=[])
