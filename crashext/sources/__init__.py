"""Text sources: /proc snapshots, kernel logs. Parsers return plain data."""
