"""Authentication of incoming mail: SPF, DKIM, ARC, DMARC, each a pipeline stage of its own."""
