"""The python-threatexchange (pytx) extension: our PDQ signal type, index and the StopNCII
exchange that honours withdrawals. Wraps ``index`` and ``bank``; nothing in the library
imports it. Needs ``pip install 'ncii-hash[threatexchange]'``.

* :class:`NciiPdqIndex` -- pytx's ``SignalTypeIndex`` for PDQ over our exact ``HashIndex``.
* :class:`NciiPdqSignal` (name ``pdq``, for HMA's ``OMM_CONFIG``) and
  :class:`NciiPdqNamedSignal` (name ``ncii_pdq``, for the pytx CLI, which keeps its own ``pdq``).
* :class:`NciiStopNCIIExchange` -- StopNCII's feed with withdrawals, case numbers and feedback.
* ``TX_MANIFEST``: ``threatexchange config extensions add ncii_hash.tx``.

HMA deployments: docs/hma.md.
"""

from .._util.optional import optional_import

optional_import("threatexchange", extra="threatexchange", purpose="ncii_hash.tx (the pytx extension)")

from threatexchange.extensions.manifest import ThreatExchangeExtensionManifest  # noqa: E402

from .index import NciiPdqIndex  # noqa: E402
from .signal import NCII_PDQ_SIGNAL_TYPES, NciiPdqHasher, NciiPdqNamedSignal, NciiPdqSignal  # noqa: E402
from .stopncii import (NciiStopNCIICheckpoint, NciiStopNCIIExchange, NciiStopNCIISignalMetadata,  # noqa: E402
                       FeedUpdates)

#: What ``threatexchange config extensions add ncii_hash.tx`` loads into the pytx CLI.
TX_MANIFEST = ThreatExchangeExtensionManifest(
    signal_types=(NciiPdqNamedSignal,),
    apis=(NciiStopNCIIExchange,),
)

__all__ = [
    "NCII_PDQ_SIGNAL_TYPES", "FeedUpdates", "NciiPdqHasher", "NciiPdqIndex", "NciiPdqNamedSignal", "NciiPdqSignal",
    "NciiStopNCIICheckpoint", "NciiStopNCIIExchange", "NciiStopNCIISignalMetadata", "TX_MANIFEST",
]
