"""The pure core: configuration turned into data (values, rendered bundles, plans, decisions,
the projection of events). No I/O on hosts, no clock of its own."""
