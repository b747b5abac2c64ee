"""Gateway-to-gateway encryption: the outbound (sign, encrypt) and inbound (decrypt) stages."""
