"""The host-plugin contract as data: interface names, the worlds, reference signatures, WIT.

Nothing here touches wasmtime; checking a component against the contract is the runtime's
job. Import the submodules directly: ``manifest`` reads the world registry, and this package
reads manifests.
"""
