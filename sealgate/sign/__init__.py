"""Outgoing signatures: DKIM headers whose private-key operation is done by the keystore."""
