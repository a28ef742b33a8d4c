"""Store adapters: one subpackage per store, each owning how its client is built and checked."""
