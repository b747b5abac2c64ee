"""The only code that knows pymilter: callbacks that fill a Session and a Message, then run the pipeline."""
