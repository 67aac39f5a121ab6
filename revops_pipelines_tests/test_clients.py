"""One factory pairs each system with its URL, credentials and limits from the settings."""

import pytest

from revops_pipelines.clients import SYSTEMS, client_from_settings
from revops_pipelines.connectors.crm import CrmWriter
from revops_pipelines.connectors.erp import ErpClient, ErpWriter
from revops_pipelines.settings import Settings

SETTINGS = Settings(
    crm_url="http://crm.test",
    billing_url="http://billing.test",
    erp_url="http://erp.test",
    max_attempts=3,
    erp_rate_limit=7.0,
)


def test_readers_take_the_settings_limits_and_writers_the_callers():
    for system in SYSTEMS:
        client = client_from_settings(SETTINGS, system)
        assert client.system == system and str(client.base_url).startswith(f"http://{system}")
        client.close()
    reader = client_from_settings(SETTINGS, "erp")
    assert type(reader) is ErpClient and reader._max_attempts == 3
    writer = client_from_settings(SETTINGS, "erp", writer=True, max_attempts=1)
    assert isinstance(writer, ErpWriter) and writer._max_attempts == 1
    assert isinstance(client_from_settings(SETTINGS, "crm", writer=True), CrmWriter)
    for client in (reader, writer):
        client.close()
    with pytest.raises(ValueError, match="unknown system 'ledger'"):
        client_from_settings(SETTINGS, "ledger")
