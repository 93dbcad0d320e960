"""The package version, importable without metadata lookups (the lean client sends it)."""

VERSION = "0.1.0"
