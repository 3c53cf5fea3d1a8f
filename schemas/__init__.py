"""Document types and codecs: pure, no I/O (imports nothing from streams, faust or aiokafka)."""
