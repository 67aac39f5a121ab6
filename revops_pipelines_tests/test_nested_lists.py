"""Stripe's nested lists: the sandbox embeds 10 entries and pages the rest; readers get all."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import httpx
import pytest
import stripe

from revops_pipelines.connectors.billing import BillingClient
from revops_pipelines.raw.extract import extract_stream
from revops_pipelines.sandbox.serve import SandboxUrls, running_sandbox
from revops_pipelines.sqlmodels import load_models, run_models, upstream_closure

KEY = "sk_test_nested_lists"
AUTH = {"Authorization": f"Bearer {KEY}"}
INVOICE = "in_1QabcAcme0001"
SUBSCRIPTION = "sub_1QxyZAcme0001"


def _records(state: Path, name: str) -> list[dict]:
    text = (state / "billing" / f"{name}.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _write(state: Path, name: str, records: list[dict]) -> None:
    path = state / "billing" / f"{name}.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")


def _grow(state: Path, name: str, record_id: str, field: str, count: int) -> list[dict]:
    """Gives one record of the state file `count` entries in its nested list; returns them."""
    records = _records(state, name)
    record = next(r for r in records if r["id"] == record_id)
    first = record[field]["data"][0]
    entries = [{**first, "id": f"{first['id']}_{n:02d}"} for n in range(count)]
    record[field]["data"] = entries
    _write(state, name, records)
    return entries


@pytest.fixture
def big(handwritten_state: Path) -> dict[str, list[str]]:
    """An invoice with 30 lines and a subscription with 15 items, in list order."""
    lines = _grow(handwritten_state, "invoices", INVOICE, "lines", 30)
    items = _grow(handwritten_state, "subscriptions", SUBSCRIPTION, "items", 15)
    return {"lines": [e["id"] for e in lines], "items": [e["id"] for e in items]}


@pytest.fixture
def urls(handwritten_state: Path, big) -> SandboxUrls:
    with running_sandbox(handwritten_state, seed=3) as served:
        yield served


@pytest.fixture
def http(urls: SandboxUrls) -> httpx.Client:
    with httpx.Client(base_url=urls.billing, headers=AUTH, timeout=10) as client:
        yield client


def _get(http: httpx.Client, path: str, **params) -> dict:
    return http.get(path, params=params).raise_for_status().json()


def _ids(body: dict) -> list[str]:
    return [entry["id"] for entry in body["data"]]


def test_an_invoice_embeds_ten_lines_and_says_where_the_rest_are(http, big, handwritten_state):
    for body in (
        _get(http, f"/v1/invoices/{INVOICE}"),
        next(i for i in _get(http, "/v1/invoices", limit=100)["data"] if i["id"] == INVOICE),
    ):
        assert body["lines"]["has_more"] is True
        assert body["lines"]["url"] == f"/v1/invoices/{INVOICE}/lines"
        assert _ids(body["lines"]) == big["lines"][:10]
    subscription = _get(http, f"/v1/subscriptions/{SUBSCRIPTION}")
    assert _ids(subscription["items"]) == big["items"][:10]
    assert subscription["items"]["has_more"] is True
    assert subscription["items"]["url"] == f"/v1/subscription_items?subscription={SUBSCRIPTION}"
    # a record whose list fits is served exactly as stored
    small = next(r for r in _records(handwritten_state, "invoices") if r["id"] != INVOICE)
    assert _get(http, f"/v1/invoices/{small['id']}") == small


def test_sub_lists_page_with_the_usual_cursors(http, big):
    lines, path = big["lines"], f"/v1/invoices/{INVOICE}/lines"
    walked, params = [], {"limit": 7}
    for _ in range(10):
        body = _get(http, path, **params)
        assert body["object"] == "list" and body["url"] == path
        walked += _ids(body)
        if not body["has_more"]:
            break
        params["starting_after"] = walked[-1]
    assert walked == lines
    assert _ids(_get(http, path)) == lines[:10]  # default limit
    page = _get(http, path, limit=5, starting_after=lines[19])
    assert (_ids(page), page["has_more"]) == (lines[20:25], True)
    page = _get(http, path, limit=5, ending_before=lines[20])
    assert (_ids(page), page["has_more"]) == (lines[15:20], True)
    page = _get(http, path, limit=5, ending_before=lines[3])
    assert (_ids(page), page["has_more"]) == (lines[:3], False)

    items = _get(http, "/v1/subscription_items", subscription=SUBSCRIPTION, limit=100)
    assert (_ids(items), items["has_more"], items["url"]) == (
        big["items"],
        False,
        "/v1/subscription_items",
    )


@pytest.mark.parametrize(
    ("path", "params", "status", "param"),
    [
        (f"/v1/invoices/{INVOICE}/lines", {"starting_after": "il_nope"}, 400, "starting_after"),
        (f"/v1/invoices/{INVOICE}/lines", {"limit": "101"}, 400, "limit"),
        (f"/v1/invoices/{INVOICE}/lines", {"colour": "red"}, 400, "colour"),
        ("/v1/invoices/in_nope/lines", {}, 404, "id"),
        ("/v1/subscription_items", {}, 400, "subscription"),
        ("/v1/subscription_items", {"subscription": "sub_nope"}, 404, "subscription"),
    ],
)
def test_sub_list_refusals_are_stripe_errors(http, path, params, status, param):
    response = http.get(path, params=params)
    assert response.status_code == status
    assert response.json()["error"]["param"] == param


class RecordingClient(BillingClient):
    """Notes the path of every GET, to show which sub-lists were read."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.paths: list[str] = []

    def get_json(self, url: str, **kwargs):
        self.paths.append(url)
        return super().get_json(url, **kwargs)


def test_the_connector_stores_whole_lists_reading_sub_lists_only_when_has_more(
    urls, big, handwritten_state
):
    client = RecordingClient(urls.billing, api_key=KEY, rate_limit=0, workers=2)
    with client, duckdb.connect(":memory:") as con:
        for stream in ("invoice", "subscription"):
            extract_stream(client, con, stream, run_id="r1")
        sub_lists = [p for p in client.paths if p.endswith("/lines") or "subscription_items" in p]
        # one sub-list page each, for the two records whose embedded page said has_more
        assert sorted(sub_lists) == [f"/v1/invoices/{INVOICE}/lines", "/v1/subscription_items"]

        def stored(table: str) -> dict[str, dict]:
            rows = con.execute(f"SELECT id, payload FROM raw.{table}").fetchall()
            return {r[0]: json.loads(r[1]) for r in rows}

        # raw holds each record as the state file has it: the whole list, nothing more to read
        assert stored("billing_invoice") == {
            r["id"]: r for r in _records(handwritten_state, "invoices")
        }
        assert stored("billing_subscription") == {
            r["id"]: r for r in _records(handwritten_state, "subscriptions")
        }
        models = load_models()
        wanted = {"stg_billing_invoice_line", "stg_billing_subscription_item"}
        run_models(con, models, select=upstream_closure(models, wanted))
        staged = con.execute(
            "SELECT invoice_line_id FROM staging.stg_billing_invoice_line "
            "WHERE invoice_id = ? ORDER BY line_number",
            [INVOICE],
        ).fetchall()
        assert [r[0] for r in staged] == big["lines"]
        items = con.execute(
            "SELECT count(*) FROM staging.stg_billing_subscription_item WHERE subscription_id = ?",
            [SUBSCRIPTION],
        ).fetchone()[0]
        assert items == 15

        # a change read through events re-reads the record, and its list whole again
        http = httpx.Client(base_url=urls.billing, headers=AUTH)
        with http:
            http.post(
                f"/v1/subscriptions/{SUBSCRIPTION}", data={"metadata[note]": "x"}
            ).raise_for_status()
        stats = extract_stream(client, con, "subscription", run_id="r2")
        assert stats.changed == 1
        changed = stored("billing_subscription")[SUBSCRIPTION]
        assert changed["metadata"]["note"] == "x"
        assert [i["id"] for i in changed["items"]["data"]] == big["items"]
        assert changed["items"]["has_more"] is False


def test_the_stripe_package_pages_the_sub_lists(urls, big):
    client = stripe.StripeClient(KEY, base_addresses={"api": urls.billing})
    invoice = client.v1.invoices.retrieve(INVOICE)
    assert len(invoice.lines.data) == 10
    assert [line.id for line in invoice.lines.auto_paging_iter()] == big["lines"]
    listed = client.v1.invoices.line_items.list(INVOICE, params={"limit": 4})
    assert [line.id for line in listed.auto_paging_iter()] == big["lines"]
    items = client.v1.subscription_items.list(params={"subscription": SUBSCRIPTION, "limit": 4})
    assert [item.id for item in items.auto_paging_iter()] == big["items"]
