"""A connection error names the host it could not reach (a bare "refused" does not help)."""

from __future__ import annotations

import pytest

from hitl_agent import APIConnectionError, HITLClient, RetryPolicy


def test_a_refused_connection_names_the_host_and_port() -> None:
    # Port 9 on loopback: nothing listens, the connection is refused at once.
    client = HITLClient("k", base_url="http://127.0.0.1:9/v1", retry=RetryPolicy(max_retries=0))
    with client, pytest.raises(APIConnectionError) as caught:
        client.test()
    assert "GET http://127.0.0.1:9/v1/test failed: ConnectError" in str(caught.value)
