"""Shared logic of the hybrid-llm tools: rendering the chart with the real Helm engine, the
values profiles, the figures data file, the KAITO export and node pool commands.

The scripts in scripts/ are thin command-line fronts over this package.
"""
