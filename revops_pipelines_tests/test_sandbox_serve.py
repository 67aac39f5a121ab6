"""`running_sandbox` and `revops sandbox serve` start the three systems or refuse a bad state."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from revops_pipelines.sandbox.serve import SandboxUrls, running_sandbox
from revops_pipelines.sandbox.state import StateFileError

REVOPS = Path(sys.executable).parent / "revops"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_sandbox_fixture_serves_three_systems(sandbox: SandboxUrls) -> None:
    urls = [sandbox.crm, sandbox.billing, sandbox.erp]
    assert len(set(urls)) == 3
    for url in urls:
        assert url.startswith("http://127.0.0.1:")
        assert not url.endswith("/")
    products = httpx.get(
        sandbox.billing + "/v1/products", headers={"Authorization": "Bearer sk_test_x"}
    )
    assert {p["metadata"]["sku"] for p in products.json()["data"]} == {"PRO-M", "ENT-M"}


def test_requested_port_is_used_and_a_busy_port_is_an_error(handwritten_state: Path) -> None:
    port = _free_port()
    with running_sandbox(handwritten_state, ports={"billing": port}) as urls:
        assert urls.billing == f"http://127.0.0.1:{port}"
        with pytest.raises(OSError), running_sandbox(handwritten_state, ports={"billing": port}):
            pass
    # Stopped servers give their ports back.
    with running_sandbox(handwritten_state, ports={"billing": port}) as urls:
        assert urls.billing.endswith(f":{port}")


def test_bad_state_stops_running_sandbox(handwritten_state: Path) -> None:
    path = handwritten_state / "erp" / "customer.jsonl"
    path.write_text(path.read_text(encoding="utf-8") + "{not json}\n", encoding="utf-8")
    with pytest.raises(StateFileError) as caught, running_sandbox(handwritten_state):
        pass
    assert caught.value.path == path
    assert caught.value.line == 5


def _serve(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(REVOPS), "sandbox", "serve", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_cli_serve_prints_urls_and_serves_until_terminated(handwritten_state: Path) -> None:
    process = _serve("--state", str(handwritten_state), "--billing-key", "sk_test_cli_only")
    try:
        lines = [process.stdout.readline().strip() for _ in range(3)]
        assert [line.partition("=")[0] for line in lines] == ["crm", "billing", "erp"]
        urls = {name: url for name, _, url in (line.partition("=") for line in lines)}
        assert all(url.startswith("http://127.0.0.1:") for url in urls.values())
        listed = httpx.get(
            urls["billing"] + "/v1/customers",
            headers={"Authorization": "Bearer sk_test_cli_only"},
            timeout=10,
        )
        assert listed.status_code == 200
        assert len(listed.json()["data"]) == 4
        other_key = httpx.get(
            urls["billing"] + "/v1/customers", headers={"Authorization": "Bearer sk_test_other"}
        )
        assert other_key.status_code == 401
    finally:
        process.terminate()
        process.wait(timeout=20)
    assert process.returncode == 0


@pytest.mark.parametrize(
    ("line", "reason"),
    [('{"id": "cus_broken", ', "invalid JSON"), ('{"name": "no id"}', "id: is required")],
)
def test_cli_serve_refuses_a_malformed_state_line(
    handwritten_state: Path, line: str, reason: str
) -> None:
    path = handwritten_state / "billing" / "customers.jsonl"
    path.write_text(path.read_text(encoding="utf-8") + line + "\n", encoding="utf-8")
    process = _serve("--state", str(handwritten_state))
    out, err = process.communicate(timeout=60)
    assert process.returncode == 2
    assert out == ""
    assert f"{path}:5:" in err
    assert reason in err


def test_cli_serve_refuses_a_bad_fault_spec(handwritten_state: Path) -> None:
    process = _serve("--state", str(handwritten_state), "--faults", "error_rate=often")
    _, err = process.communicate(timeout=60)
    assert process.returncode == 2
    assert "error_rate=often" in err
