"""The survivor's page served by the hub at ``/survivor`` (docs/wasm.md): the local app's flow
and words, with hashing done in the browser by the PDQ core compiled to WebAssembly
(``assets/pdq-simd.wasm``, ``assets/pdq.wasm``, loaded by ``assets/pdq.js``)."""
