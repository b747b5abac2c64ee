"""Envelope v1 (docs/envelope.md): one format for gateway transport and sealing at rest."""
