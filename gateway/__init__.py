"""hybrid-llm gateway: an OpenAI-compatible router between self-hosted vLLM and Azure OpenAI.

Modules, one job each:
  config      load and check the YAML config, with errors that name the file and field
  keys        hashed gateway API keys and what each may use
  routing     pick a route (primary backend and fallbacks) for a request
  backends    one upstream: its URLs, credentials, in-flight limit and circuit breaker
  azure_auth  api-key and Entra ID (workload identity) credentials for Azure OpenAI
  sse         pass server-sent events through, reading usage on the way
  proxy       send a request upstream with fallback and overflow: the hot path
  metrics     Prometheus metrics
  app         the FastAPI application
"""
