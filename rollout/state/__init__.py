"""The state: typed events and plant locks behind one interface, with a backend per URL."""
