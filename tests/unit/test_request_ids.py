"""Request ids: the client's when sane, else one made here that no other request shares."""

from __future__ import annotations

import re

from dispatcher.web.request_ids import request_id_for


def test_a_sane_id_is_kept_and_any_other_replaced() -> None:
    assert request_id_for("proxy-7f3a:42") == "proxy-7f3a:42"
    for given in (None, "a b", "", "x" * 129, "é"):
        assert re.fullmatch(r"[0-9a-f]{32}", request_id_for(given))


def test_made_ids_differ() -> None:
    made = [request_id_for(None) for _ in range(10_000)]
    assert len(set(made)) == len(made)
