"""Reading scenario files: YAML with ``extends``, error messages, the schema reference."""
