"""Pure decisions: what to do with a message given config and what the stages found. No I/O."""
