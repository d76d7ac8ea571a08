"""NciiPdqSignal / NciiPdqNamedSignal against pytx's own PdqSignal (hashes, quality rule,
comparison, names), the manifest as pytx loads it, and the extension's ImportError without pytx."""

from __future__ import annotations

import subprocess
import sys

import pytest
from tx_helpers import feed_image, low_quality_image, sample_image


@pytest.fixture(scope="module")
def pytx():
    return pytest.importorskip("threatexchange", reason="the pytx extension needs threatexchange (pip install "
                               "'ncii-hash[threatexchange]')")


def test_without_threatexchange_the_extension_names_the_extra() -> None:
    code = ("import sys; sys.modules['threatexchange'] = None\n"
            "import ncii_hash\n"
            "try:\n    import ncii_hash.tx\nexcept ImportError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "pip install 'ncii-hash[threatexchange]'" in out.stdout


def test_names_types_and_index(pytx) -> None:
    from threatexchange.signal_type.pdq.signal import PdqSignal

    from ncii_hash.tx import NciiPdqIndex, NciiPdqNamedSignal, NciiPdqSignal

    assert NciiPdqSignal.get_name() == "pdq" and NciiPdqNamedSignal.get_name() == "ncii_pdq"
    for st in (NciiPdqSignal, NciiPdqNamedSignal):
        assert issubclass(st, PdqSignal) and st.get_index_cls() is NciiPdqIndex
        assert st.get_examples() == PdqSignal.get_examples()
        with pytest.raises(ValueError):
            st.validate_signal_str("A" * 64)  # pytx's own rule: lowercase hex
    assert not issubclass(NciiPdqNamedSignal, NciiPdqSignal)


def test_hashes_equal_pytx_and_low_quality_is_empty(pytx) -> None:
    pytest.importorskip("pdqhash", reason="pytx's PdqSignal hashes with pdqhash")
    from threatexchange.signal_type.pdq.signal import PdqSignal

    from ncii_hash.tx import NciiPdqNamedSignal, NciiPdqSignal

    for image in (sample_image(), feed_image()):
        theirs = PdqSignal.hash_from_file(image)
        assert len(theirs) == 64
        assert NciiPdqSignal.hash_from_file(image) == theirs
        assert NciiPdqNamedSignal.hash_from_bytes(image.read_bytes()) == theirs
    assert PdqSignal.hash_from_file(low_quality_image()) == ""
    assert NciiPdqSignal.hash_from_file(low_quality_image()) == ""
    assert NciiPdqSignal.dihedral_hashes_from_file(low_quality_image()) == []
    with pytest.raises(ValueError):
        NciiPdqSignal.hash_from_bytes(b"not an image")


def test_compare_hash_agrees_with_pytx(pytx) -> None:
    from threatexchange.signal_type.pdq.signal import PdqSignal

    from ncii_hash.tx import NciiPdqSignal

    examples = PdqSignal.get_examples()
    for a in examples[:6]:
        for b in examples:
            for threshold in (0, 5, 31):
                ours = NciiPdqSignal.compare_hash(a, b, threshold)
                theirs = PdqSignal.compare_hash(a, b, threshold)
                assert ours.match == theirs.match and ours.distance.distance == theirs.distance.distance
    with pytest.raises(ValueError):
        NciiPdqSignal.compare_hash("zz", examples[0])


def test_manifest_loads_like_pytx_loads_it(pytx) -> None:
    from threatexchange.content_type.photo import PhotoContent
    from threatexchange.extensions.manifest import ThreatExchangeExtensionManifest
    from threatexchange.interface_validation import SignalExchangeAPIMapping, SignalTypeMapping
    from threatexchange.exchanges.impl.stop_ncii_api import StopNCIISignalExchangeAPI
    from threatexchange.signal_type.pdq.signal import PdqSignal

    from ncii_hash.tx import NciiPdqNamedSignal, NciiStopNCIIExchange

    manifest = ThreatExchangeExtensionManifest.load_from_module_name("ncii_hash.tx")
    assert manifest.signal_types == (NciiPdqNamedSignal,) and manifest.apis == (NciiStopNCIIExchange,)
    # next to pytx's own pdq and stop_ncii: names are distinct, as the CLI requires
    SignalTypeMapping([PhotoContent], [PdqSignal, *manifest.signal_types])
    SignalExchangeAPIMapping([StopNCIISignalExchangeAPI, *manifest.apis])
