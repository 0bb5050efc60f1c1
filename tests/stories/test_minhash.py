"""The batch signatures are datasketch's MinHash; the compact re-check estimates the Jaccard similarity."""

from __future__ import annotations

import numpy as np
import pytest
from datasketch import MinHash

from stories.minhash import Signer, estimate
from stories.text import shingles

TEXTS = [
    "Glencore slumps 30 percent as debt fears grow",
    "Glencore slumps 25 pct as debt fears grow",
    "Tesco turnaround gathers pace under new CEO",
    "港股腾讯控股转跌，报444.4港元。",
    "",
]


def test_signatures_equal_datasketch_minhash() -> None:
    signer = Signer(num_perm=64, bands=16, rows=4, seed=5)
    sets = [shingles(t) for t in TEXTS]
    signatures = signer.signatures(sets)
    for text_shingles, signature in zip(sets[:-1], signatures[:-1], strict=True):
        reference = MinHash(num_perm=64, seed=5)
        reference.update_batch([s.encode("utf-8") for s in text_shingles])
        assert np.array_equal(signature, reference.hashvalues)
    assert (signatures[-1] == np.iinfo(np.uint32).max).all()  # an empty set: no value


def test_compact_estimate_tracks_jaccard() -> None:
    signer = Signer(num_perm=128, bands=32, rows=4)
    base = {f"w{i}" for i in range(200)}
    for overlap in (0, 50, 100, 150, 200):
        other = {f"w{i}" for i in range(200 - overlap)} | {f"x{i}" for i in range(overlap)}
        jaccard = len(base & other) / len(base | other)
        a, b = signer.compact(signer.signatures([base, other]))
        assert len(a) == 128
        assert estimate(a, b) == pytest.approx(jaccard, abs=0.12)
    a, b = signer.compact(signer.signatures([base, set(base)]))
    assert estimate(a, b) == 1.0


def test_equal_bands_for_equal_texts_and_few_for_different_ones() -> None:
    signer = Signer()
    bands = signer.band_hashes(signer.signatures([shingles(t) for t in TEXTS[:3] + TEXTS[:1]]))
    assert bands.shape == (4, signer.bands) and bands.dtype == np.uint64
    assert np.array_equal(bands[0], bands[3])
    assert (bands[0] == bands[2]).sum() == 0


def test_the_bands_must_fit_the_signature() -> None:
    with pytest.raises(ValueError, match="bands"):
        Signer(num_perm=64, bands=32, rows=4)
