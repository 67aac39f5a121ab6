"""The billing sandbox behaves like the Stripe API subset in SOURCES.md, over real HTTP."""

from __future__ import annotations

import base64
from pathlib import Path

import httpx
import pytest
import stripe
from hypothesis import given, settings
from hypothesis import strategies as st

from revops_pipelines.sandbox.serve import SandboxUrls, running_sandbox
from revops_pipelines.sandbox.state import Collection, Credentials, StateStore
from revops_pipelines.sandbox.stripe_lists import OrderedView, PageRequest, page

KEY = "sk_test_billing_tests"
AUTH = {"Authorization": f"Bearer {KEY}"}


def _file(state: Path, name: str) -> list[dict]:
    """The records of one state file as the state directory holds them: file plus journal."""
    return list(StateStore.load(state).collection("billing", name))


def _newest_first(records: list[dict]) -> list[str]:
    return [r["id"] for r in sorted(records, key=lambda r: (r["created"], r["id"]), reverse=True)]


@pytest.fixture
def client(sandbox: SandboxUrls) -> httpx.Client:
    with httpx.Client(base_url=sandbox.billing, headers=AUTH, timeout=10) as http:
        yield http


def _walk(client: httpx.Client, path: str, params: dict, *, backwards: bool = False) -> list[str]:
    """Follow cursors the way the stripe package does, collecting ids in list order."""
    seen: list[str] = []
    params = dict(params)
    for _ in range(100):  # a cursor that does not move must fail the test, not hang it
        body = client.get(path, params=params).raise_for_status().json()
        ids = [record["id"] for record in body["data"]]
        seen.extend(reversed(ids) if backwards else ids)
        if not body["has_more"]:
            return seen
        if backwards:
            params["ending_before"] = ids[0]
        else:
            params["starting_after"] = ids[-1]
    pytest.fail(f"paging {path} did not end: {seen[-5:]}")


def test_lists_are_newest_first_with_id_breaking_ties(
    client: httpx.Client, handwritten_state: Path
) -> None:
    body = client.get("/v1/invoices", params={"limit": 100}).json()
    assert body["object"] == "list"
    assert body["url"] == "/v1/invoices"
    assert body["has_more"] is False
    invoices = _file(handwritten_state, "invoices")
    assert [r["id"] for r in body["data"]] == _newest_first(invoices)
    # The fixture holds three invoices created in the same second: the tie-break matters.
    assert len({r["created"] for r in invoices}) < len(invoices)


def test_default_limit_is_ten(client: httpx.Client) -> None:
    # Ten is more than the fixture's invoices, so every one comes back on one page.
    assert len(client.get("/v1/invoices").json()["data"]) == 7
    assert len(client.get("/v1/invoices", params={"limit": 3}).json()["data"]) == 3


@pytest.mark.parametrize("limit", [1, 2, 3])
def test_paging_both_ways_returns_every_record_once(
    client: httpx.Client, handwritten_state: Path, limit: int
) -> None:
    expected = _newest_first(_file(handwritten_state, "invoices"))
    assert _walk(client, "/v1/invoices", {"limit": limit}) == expected
    oldest = expected[-1]
    backwards = _walk(
        client, "/v1/invoices", {"limit": limit, "ending_before": oldest}, backwards=True
    )
    assert backwards == list(reversed(expected[:-1]))


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"created[gte]": "yesterday"}, "created[gte]"),
        ({"colour": "blue"}, "colour"),
        ({"status": "paidish"}, "status"),
    ],
)
def test_bad_list_parameters_are_400_naming_the_param(
    client: httpx.Client, params: dict, param: str
) -> None:
    response = client.get("/v1/invoices", params=params)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert response.headers["request-id"].startswith("req_")


@pytest.mark.parametrize("cursor", ["starting_after", "ending_before"])
def test_unknown_cursor_is_no_such_object(client: httpx.Client, cursor: str) -> None:
    response = client.get("/v1/invoices", params={cursor: "in_missing"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error == {
        "type": "invalid_request_error",
        "code": "resource_missing",
        "message": "No such invoice: 'in_missing'",
        "param": cursor,
    }


def test_created_filters(client: httpx.Client, handwritten_state: Path) -> None:
    invoices = _file(handwritten_state, "invoices")
    moment = 1738368000  # three invoices share this second

    def ids(params: dict) -> set[str]:
        data = client.get("/v1/invoices", params={"limit": 100, **params}).json()["data"]
        return {r["id"] for r in data}

    def where(test) -> set[str]:
        return {r["id"] for r in invoices if test(r["created"])}

    assert ids({"created[gte]": moment}) == where(lambda c: c >= moment)
    assert ids({"created[gt]": moment}) == where(lambda c: c > moment)
    assert ids({"created[lte]": moment}) == where(lambda c: c <= moment)
    assert ids({"created[lt]": moment}) == where(lambda c: c < moment)
    assert ids({"created": moment}) == where(lambda c: c == moment)
    assert len(ids({"created": moment})) == 3


def test_type_filters(client: httpx.Client, handwritten_state: Path) -> None:
    def ids(path: str, params: dict) -> list[str]:
        return [r["id"] for r in client.get(path, params={"limit": 100, **params}).json()["data"]]

    invoices = _file(handwritten_state, "invoices")
    acme = "cus_R1a2B3c4D5e6F7"
    assert ids("/v1/invoices", {"customer": acme}) == _newest_first(
        [r for r in invoices if r["customer"] == acme]
    )
    assert ids("/v1/invoices", {"customer": acme, "status": "paid"}) == [
        "in_1QabcAcme0002",
        "in_1QabcAcme0001",
    ]
    assert ids("/v1/invoices", {"status": "void"}) == ["in_1QabcGulf0002"]
    assert ids("/v1/invoice_payments", {"invoice": "in_1QabcSaku0001"}) == ["inpay_1QSaku000001"]
    assert ids("/v1/credit_notes", {"invoice": "in_1QabcMuel0001"}) == ["cn_1QMuel000001"]
    assert ids("/v1/invoices", {"customer": "cus_nobody"}) == []


def test_subscription_list_hides_canceled_unless_asked(client: httpx.Client) -> None:
    def ids(params: dict) -> set[str]:
        data = client.get("/v1/subscriptions", params=params).json()["data"]
        return {r["id"] for r in data}

    canceled = "sub_1QxyZGulf0001"
    assert canceled not in ids({})
    assert len(ids({})) == 3
    assert ids({"status": "canceled"}) == {canceled}
    assert canceled in ids({"status": "all"})
    assert len(ids({"status": "all"})) == 4


def test_events_filter_by_type_and_types(client: httpx.Client) -> None:
    def types(params: list[tuple[str, str]]) -> list[str]:
        return [e["type"] for e in client.get("/v1/events", params=params).json()["data"]]

    assert types([("type", "customer.updated")]) == ["customer.updated"] * 2
    assert types([("types[]", "invoice.created")]) == ["invoice.created"]
    assert sorted(types([("types[]", "invoice.created"), ("types[]", "customer.updated")])) == [
        "customer.updated",
        "customer.updated",
        "invoice.created",
    ]
    assert types([("created[gt]", "1750377600")]) == ["customer.updated"]


def test_retrieve_and_missing_record(client: httpx.Client) -> None:
    customer = client.get("/v1/customers/cus_S2b3C4d5E6f7G8").json()
    assert customer["name"] == "Müller & Söhne GmbH"
    assert customer["invoice_prefix"] == "MS01"  # a field outside the contract survives
    response = client.get("/v1/prices/price_nope")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "resource_missing"
    assert response.json()["error"]["message"] == "No such price: 'price_nope'"
    assert client.get("/v1/widgets").status_code == 404


def test_authentication(sandbox: SandboxUrls) -> None:
    url = sandbox.billing + "/v1/customers"
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, headers={"Authorization": "Bearer pk_live_nope"}).status_code == 401
    assert httpx.get(url, headers={"Authorization": "Bearer sk_test_"}).status_code == 401
    basic = base64.b64encode(f"{KEY}:".encode()).decode()
    assert httpx.get(url, headers={"Authorization": f"Basic {basic}"}).status_code == 200
    error = httpx.get(url).json()["error"]
    assert error["type"] == "invalid_request_error"


def test_configured_key_is_the_only_one_accepted(handwritten_state: Path) -> None:
    with running_sandbox(handwritten_state, credentials=Credentials(billing_key=KEY)) as urls:
        url = urls.billing + "/v1/customers"
        assert httpx.get(url, headers=AUTH).status_code == 200
        other = {"Authorization": "Bearer sk_test_other"}
        assert httpx.get(url, headers=other).status_code == 401


def test_update_merges_metadata_and_address_and_persists(
    client: httpx.Client, handwritten_state: Path
) -> None:
    response = client.post(
        "/v1/customers/cus_R1a2B3c4D5e6F7",
        data={
            "metadata[legal_entity]": "",
            "metadata[region]": "west",
            "address[line2]": "Suite 5",
            "email": "billing@acme.example",
        },
    )
    assert response.status_code == 200, response.text
    customer = response.json()
    assert customer["metadata"] == {"crm_account_id": "001Hs00003AbCdEIAV", "region": "west"}
    assert customer["address"]["line1"] == "1 Main St"
    assert customer["address"]["line2"] == "Suite 5"
    stored = {r["id"]: r for r in _file(handwritten_state, "customers")}
    assert stored["cus_R1a2B3c4D5e6F7"] == customer
    listed = {r["id"]: r for r in client.get("/v1/customers").json()["data"]}
    assert listed["cus_R1a2B3c4D5e6F7"] == customer
    assert listed["cus_S2b3C4d5E6f7G8"] == stored["cus_S2b3C4d5E6f7G8"]
    event = client.get("/v1/events", params={"limit": 1}).json()["data"][0]
    assert event["type"] == "customer.updated"
    assert event["data"]["object"]["email"] == "billing@acme.example"
    assert event["data"]["previous_attributes"]["email"] == "ap@acme.example"


def test_update_subscription(client: httpx.Client, handwritten_state: Path) -> None:
    response = client.post(
        "/v1/subscriptions/sub_1QxyZAcme0001",
        data={"cancel_at_period_end": "true", "metadata[crm_opportunity_id]": "006NEW"},
    )
    assert response.status_code == 200, response.text
    stored = {r["id"]: r for r in _file(handwritten_state, "subscriptions")}
    assert stored["sub_1QxyZAcme0001"]["cancel_at_period_end"] is True
    assert stored["sub_1QxyZAcme0001"]["metadata"] == {"crm_opportunity_id": "006NEW"}


@pytest.mark.parametrize(
    ("path", "data", "status", "param"),
    [
        ("/v1/customers/cus_nope", {"name": "x"}, 404, "id"),
        ("/v1/customers/cus_R1a2B3c4D5e6F7", {"colour": "x"}, 400, "colour"),
        ("/v1/customers", {"tax_exempt": "sometimes"}, 400, "tax_exempt"),
        ("/v1/subscriptions/sub_1QxyZAcme0001", {"cancel_at_period_end": "maybe"}, 400, None),
    ],
)
def test_bad_writes(
    client: httpx.Client, handwritten_state: Path, path: str, data: dict, status: int, param
) -> None:
    before = _file(handwritten_state, "customers")
    response = client.post(path, data=data)
    assert response.status_code == status
    if param:
        assert response.json()["error"]["param"] == param
    assert _file(handwritten_state, "customers") == before


def test_idempotency_key_replays_and_refuses_other_body(
    client: httpx.Client, handwritten_state: Path
) -> None:
    headers = {"Idempotency-Key": "create-new-co"}
    first = client.post("/v1/customers", data={"name": "New Co"}, headers=headers)
    again = client.post("/v1/customers", data={"name": "New Co"}, headers=headers)
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    other = client.post("/v1/customers", data={"name": "Other Co"}, headers=headers)
    assert other.status_code == 400
    assert other.json()["error"]["type"] == "idempotency_error"
    names = [r["name"] for r in _file(handwritten_state, "customers")]
    assert names.count("New Co") == 1
    assert "Other Co" not in names


def test_official_stripe_package(sandbox: SandboxUrls, handwritten_state: Path) -> None:
    client = stripe.StripeClient(KEY, base_addresses={"api": sandbox.billing})
    customers = client.v1.customers.list(params={"limit": 2}).auto_paging_iter()
    assert [c.id for c in customers] == _newest_first(_file(handwritten_state, "customers"))
    invoices = [i.id for i in client.v1.invoices.list(params={"limit": 3}).auto_paging_iter()]
    assert invoices == _newest_first(_file(handwritten_state, "invoices"))

    params = {"name": "Stripe Package Co", "metadata": {"crm_account_id": "001NEW"}}
    options = {"idempotency_key": "pkg-create-1"}
    created = client.v1.customers.create(params=params, options=options)
    repeated = client.v1.customers.create(params=params, options=options)
    assert repeated.id == created.id
    assert created.id.startswith("cus_")
    assert created.metadata["crm_account_id"] == "001NEW"
    stored = [r for r in _file(handwritten_state, "customers") if r["name"] == params["name"]]
    assert [r["id"] for r in stored] == [created.id]

    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.customers.retrieve("cus_nope")
    assert caught.value.http_status == 404
    assert caught.value.code == "resource_missing"
    events = client.v1.events.list(params={"types": ["customer.created"]})
    assert [e.data.object.id for e in events] == [created.id]


def test_legacy_module_level_configuration(
    sandbox: SandboxUrls, handwritten_state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stripe, "api_key", KEY)
    monkeypatch.setattr(stripe, "api_base", sandbox.billing)
    ids = [s.id for s in stripe.Subscription.list(limit=1, status="all").auto_paging_iter()]
    assert ids == _newest_first(_file(handwritten_state, "subscriptions"))


# ------------------------------------------------------------ paging invariant, no HTTP


def _collection(created: list[int]) -> Collection:
    collection = Collection(system="billing", name="invoices", id_field="id")
    for number, moment in enumerate(created):
        collection.put(
            {
                "id": f"in_{number:04d}",
                "created": moment,
                "customer": f"c{number % 3}",
                "lines": {"object": "list", "data": []},
            }
        )
    return collection


def _walk_view(view: OrderedView, first: PageRequest, *, backwards: bool) -> list[str]:
    seen: list[str] = []
    request = first
    for _ in range(len(view.ids) + 2):
        positions, has_more = page(view, request)
        ids = [view.ids[p] for p in positions]
        assert len(ids) <= request.limit
        seen.extend(reversed(ids) if backwards else ids)
        if not has_more:
            return seen
        cursor = {"ending_before": ids[0]} if backwards else {"starting_after": ids[-1]}
        request = PageRequest(
            limit=request.limit,
            created_gte=request.created_gte,
            predicates=request.predicates,
            indexed=request.indexed,
            **cursor,
        )
    pytest.fail(f"paging did not end: {seen[-5:]}")


@settings(max_examples=80, deadline=None)
@given(
    created=st.lists(st.integers(min_value=0, max_value=4), max_size=40),
    limit=st.integers(min_value=1, max_value=7),
    gte=st.one_of(st.none(), st.integers(min_value=0, max_value=4)),
    only_even=st.booleans(),
    customer=st.one_of(st.none(), st.sampled_from(["c0", "c1", "c2"])),
)
def test_paging_visits_every_record_once_in_order(
    created: list[int], limit: int, gte: int | None, only_even: bool, customer: str | None
) -> None:
    collection = _collection(created)
    view = OrderedView.build(collection)

    def even(record: dict) -> bool:
        return int(record["id"][3:]) % 2 == 0

    predicates = (even,) if only_even else ()
    indexed = () if customer is None else (("customer", lambda r: r["customer"], customer),)
    expected = [
        r["id"]
        for r in sorted(collection.records, key=lambda r: (r["created"], r["id"]), reverse=True)
        if (gte is None or r["created"] >= gte)
        and (not only_even or even(r))
        and (customer is None or r["customer"] == customer)
    ]
    first = PageRequest(limit=limit, created_gte=gte, predicates=predicates, indexed=indexed)
    assert _walk_view(view, first, backwards=False) == expected
    if expected:
        oldest = PageRequest(
            limit=limit,
            created_gte=gte,
            predicates=predicates,
            indexed=indexed,
            ending_before=expected[-1],
        )
        assert _walk_view(view, oldest, backwards=True) == list(reversed(expected[:-1]))
