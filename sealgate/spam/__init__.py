"""Spam scoring of incoming mail, after decryption and authentication (docs/spam.md).

One stage (`stage.stage`) runs a backend chosen in [spam]: the builtin scorer
(weighted rules plus a naive Bayes model in SQLite), SpamAssassin's spamd, or
rspamd. The milter, `sealgate spam score` and bench/spam_accuracy all call it.
"""
