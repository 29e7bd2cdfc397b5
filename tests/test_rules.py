"""The dashboard's list of rules (api/rules.py) names every rule engine/decisions.py can fire."""

from __future__ import annotations

import re
from pathlib import Path

from api.rules import RULES, rule_url


def test_every_rule_the_cadence_fires_has_an_entry() -> None:
    source = (Path(__file__).resolve().parents[1] / "engine" / "decisions.py").read_text()
    fired = set(re.findall(r'"([a-z_]+\.[a-z_]+)"', source)) | {"pause"}
    assert fired == set(RULES)


def test_a_rule_link_names_the_policy_and_the_rule() -> None:
    assert rule_url("stall.exhausted_and_patience_spent", "playbook@1") == \
        "/dashboard/rules?policy=playbook@1#rule-stall.exhausted_and_patience_spent"
    assert rule_url("a b&c") == "/dashboard/rules#rule-a%20b%26c"
