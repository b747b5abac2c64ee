"""The keystore: the only process that holds private keys; everything else asks it over a socket."""
