"""TLS between gateways (seed 004): the inbound requirement (requirement.py: refuse plaintext from
peers that must use TLS, record every session's TLS in Authentication-Results) and the outbound
policy Postfix asks for over the socketmap protocol (outbound.py, socketmap.py, server.py).
docs/tls.md says how to set both up."""
