"""`UMH_WEB_ADVERTISED_HOST`: the URL other workers forward console requests to."""

from __future__ import annotations

import pytest

from streams import settings as settings_module
from streams.settings import ConfigError, load_settings


def test_advertised_host_defaults_to_the_bind_host() -> None:
    s = load_settings({"UMH_WEB_HOST": "10.1.2.3", "UMH_WEB_PORT": "7000"})
    assert s.advertised_host == "10.1.2.3" and s.canonical_url == "http://10.1.2.3:7000"


@pytest.mark.parametrize("wildcard", ["0.0.0.0", "::"])
def test_a_wildcard_bind_advertises_the_machine(
    wildcard: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(settings_module, "machine_address", lambda: "10.9.8.7")
    s = load_settings({"UMH_WEB_HOST": wildcard})
    assert s.web_host == wildcard  # still what the server binds
    assert s.canonical_url == "http://10.9.8.7:6066"


def test_explicit_advertised_host_wins() -> None:
    s = load_settings({"UMH_WEB_HOST": "0.0.0.0", "UMH_WEB_ADVERTISED_HOST": "umh-worker-1"})
    assert s.canonical_url == "http://umh-worker-1:6066"
    v6 = load_settings({"UMH_WEB_ADVERTISED_HOST": "fd00::5", "UMH_WEB_PORT": "6067"})
    assert v6.canonical_url == "http://[fd00::5]:6067"


@pytest.mark.parametrize("bad", ["0.0.0.0", "http://x", "host:6066", "a b"])
def test_bad_advertised_host_names_the_variable(bad: str) -> None:
    with pytest.raises(ConfigError, match="UMH_WEB_ADVERTISED_HOST"):
        load_settings({"UMH_WEB_ADVERTISED_HOST": bad})


def test_machine_address_is_not_a_wildcard() -> None:
    assert settings_module.machine_address() not in settings_module.WILDCARD_HOSTS


def test_the_table_store_is_rocksdb_with_a_data_dir_and_memory_without() -> None:
    assert load_settings({}).table_store == "memory://"
    assert load_settings({"UMH_DATA_DIR": "/var/lib/umh"}).table_store == "umhrocksdb://"
    assert load_settings({"UMH_DATA_DIR": "/d", "UMH_STORE": "memory"}).table_store == "memory://"
    with pytest.raises(ConfigError, match="UMH_STORE"):
        load_settings({"UMH_STORE": "redis"})
