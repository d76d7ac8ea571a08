"""HTTP services on FastAPI + uvicorn: the exchange hub, the HMA-compatible matcher and the
survivor's local app. Only :mod:`ncii_hash.cli` imports this package (an import-linter
contract); the services use the bank and the hashing packages, never the other way round."""
