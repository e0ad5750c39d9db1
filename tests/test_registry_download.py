"""The registry ships with the package; pooch fetches, verifies and caches checkpoints."""

from __future__ import annotations

import hashlib
import shutil

import pytest
from conftest import SHARED, need, serve_folder

from geomfeat import UnknownModelError, WeightsError, get_model_card, list_models
from geomfeat.download import cache_dir, fetch_weights, is_cached
from geomfeat.download import weights_url as source_url
from geomfeat.registry import ModelCard

UPSTREAM = "https://github.com/zpengmei/geom2vec/raw/d0f5d93a575a2cb586652f0d8b22b5f10c6b5da2/"


def test_registry_lists_visnet_with_pinned_url_and_hash():
    card = get_model_card("visnet-denali")
    assert "visnet-denali" in list_models()
    assert card.file == "visnet_l6_h64_rbf64_r75.pth"
    assert card.url == UPSTREAM + "checkpoints/visnet_l6_h64_rbf64_r75.pth"
    assert card.sha256 == "b8f1ef9b591c57f7687566bd60d3664800956ac280cf2ae8e64f54196cd8d417"
    assert card.cutoff == 7.5 and card.hidden_channels == 64
    assert card.citation and card.license and card.pretraining


def test_registry_hashes_match_shared_sums():
    sums = dict(line.split()[::-1] for line in
                need(SHARED / "weights" / "SHA256SUMS").read_text().splitlines() if line)
    for name in list_models():
        card = get_model_card(name)
        assert sums[card.file] == card.sha256


def test_unknown_model_lists_known_names():
    with pytest.raises(UnknownModelError, match=r"known models: .*visnet-denali"):
        get_model_card("visnet-qm9")


@pytest.fixture()
def fresh_cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("GEOMFEAT_CACHE", str(folder))
    return folder


def test_download_over_http_verifies_and_caches(weights_url, fresh_cache, monkeypatch):
    card = get_model_card("visnet-denali")
    assert source_url(card) == f"{weights_url}/{card.file}"
    assert not is_cached(card)
    path = fetch_weights(card, progress=False)
    assert path == fresh_cache / card.file and cache_dir() == fresh_cache
    assert hashlib.sha256(path.read_bytes()).hexdigest() == card.sha256
    assert is_cached(card)
    # once cached, no network is needed
    monkeypatch.setenv("GEOMFEAT_WEIGHTS_URL", "http://127.0.0.1:9/nothing-here")
    assert fetch_weights(card, progress=False) == path


def test_default_url_is_upstream(monkeypatch):
    monkeypatch.delenv("GEOMFEAT_WEIGHTS_URL")
    card = get_model_card("visnet-denali")
    assert source_url(card) == card.url


def test_hash_mismatch_is_an_error_and_leaves_nothing_in_cache(tmp_path, fresh_cache,
                                                               monkeypatch):
    bad = tmp_path / "mirror"
    bad.mkdir()
    card = get_model_card("visnet-denali")
    (bad / card.file).write_bytes(b"not a checkpoint")
    server, url = serve_folder(bad)
    try:
        monkeypatch.setenv("GEOMFEAT_WEIGHTS_URL", url)
        with pytest.raises(WeightsError, match="SHA-256"):
            fetch_weights(card, progress=False)
    finally:
        server.shutdown()
    assert not (fresh_cache / card.file).exists()
    assert not is_cached(card)


def test_corrupt_cached_file_is_replaced(weights_url, fresh_cache):
    card = get_model_card("visnet-denali")
    fresh_cache.mkdir()
    (fresh_cache / card.file).write_bytes(b"truncated")
    path = fetch_weights(card, progress=False)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == card.sha256


def test_no_network_and_no_cache_names_url_and_both_settings(fresh_cache, monkeypatch):
    monkeypatch.setenv("GEOMFEAT_WEIGHTS_URL", "http://127.0.0.1:9/offline")
    with pytest.raises(WeightsError) as info:
        fetch_weights("visnet-denali", progress=False)
    message = str(info.value)
    assert "http://127.0.0.1:9/offline/visnet_l6_h64_rbf64_r75.pth" in message
    assert "GEOMFEAT_WEIGHTS_URL" in message and "GEOMFEAT_CACHE" in message


@pytest.mark.parametrize("as_url", [False, True])
def test_local_folder_mirror(tmp_path, fresh_cache, monkeypatch, as_url):
    card = get_model_card("visnet-denali")
    mirror = tmp_path / "air-gapped"
    mirror.mkdir()
    shutil.copy(need(SHARED / "weights" / card.file), mirror / card.file)
    monkeypatch.setenv("GEOMFEAT_WEIGHTS_URL", mirror.as_uri() if as_url else str(mirror))
    path = fetch_weights(card, progress=False)
    assert path.parent == fresh_cache and is_cached(card)


def test_a_card_can_be_passed_instead_of_a_name():
    card = get_model_card("visnet-denali")
    assert isinstance(card, ModelCard) and get_model_card(card) is card
