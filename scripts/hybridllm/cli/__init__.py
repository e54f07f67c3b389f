"""The tools' command lines: each module's main() is a console script of hybrid-llm-tools
(scripts/pyproject.toml) and is also what `python scripts/<tool>.py` runs in a checkout."""
