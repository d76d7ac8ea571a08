"""The built-in HashIndex backends, registered by name (see :mod:`.searcher` for the interface).

==============  =====  ============================================================
name            exact  what
==============  =====  ============================================================
``flat``        yes    our C++ kernel over the table itself (default; ``flat.py``)
``mih``         yes    our exact multi-index hashing (``mih.py``, ``csrc/mih.*``)
``auto``        yes    ``mih`` per query where the cost model says it beats the scan
``faiss-flat``  yes    FAISS ``IndexBinaryFlat`` mirror (``faiss_mirror.py``)
``faiss-mih``   yes    FAISS ``IndexBinaryMultiHash`` mirror; exact range search only
``faiss-ivf``   no     FAISS ``IndexBinaryIVF`` mirror (approximate)
``faiss-hnsw``  no     FAISS ``IndexBinaryHNSW`` mirror (approximate)
==============  =====  ============================================================
"""

from __future__ import annotations

from .faiss_mirror import FAISS_BACKENDS
from .flat import FlatSearcher
from .mih import AutoSearcher, MihSearcher
from .searcher import backend_names, register_backend

_BUILT_IN = (FlatSearcher, MihSearcher, AutoSearcher, *FAISS_BACKENDS)
for _cls in _BUILT_IN:
    register_backend(_cls)

#: The backend ``HashIndex()`` (and the bank, the matcher, the pytx index) use when none is named:
#: exact, and never slower than the flat scan by measurement (benchmarks/bench_match.py; the
#: rule is documented in docs/multi-index.md).
DEFAULT_BACKEND = "auto"
#: The built-in backend names, in order ("flat" first).
BACKENDS = backend_names()
#: Built-in backends whose range search returns every code within the radius.
EXACT_BACKENDS = frozenset(cls.name for cls in _BUILT_IN if cls.exact)
