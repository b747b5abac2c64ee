"""Sealing at rest: incoming mail leaves the gateway sealed to the recipients' mailbox keys."""
