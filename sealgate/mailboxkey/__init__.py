"""Client side of mailbox keys: generated and kept on the user's machine, never sent to the server.

The key is an Ed25519 seed. Its Ed25519 half signs the registration request
(proof that the requester holds it); its X25519 half, derived the standard
way (libsodium's ed25519→curve25519), is what mail is sealed to.
"""
