"""Sans-IO cores of the client SDK: state machines fed with events and the current time; no I/O here."""
