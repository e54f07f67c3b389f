"""hybrid-llm gateway: an OpenAI-compatible router between self-hosted vLLM and Azure OpenAI.

Modules, one job each:
  config      load and check the YAML config, with errors that name the file and field
  keys        hashed gateway API keys and what each may use; re-read when the file changes
  routing     pick a route (primary backend or split arms, and fallbacks) for a request
  split       weighted, sticky splits: the arm a request lands on, by a stable hash or at random
  backends    one upstream: its URLs, credentials, timeouts, in-flight limit and circuit breaker,
              and the Lease that owns one attempt's slot and circuit ticket
  circuit     the circuit breaker
  outcomes    the fallback policy: an attempt's outcome, what the circuit records, what comes next
  azure_auth  api-key and Entra ID (workload identity) credentials for Azure OpenAI
  sse         pass server-sent events through, reading usage on the way
  usage       token counts from an upstream's usage object, read defensively
  watchdog    end streams that went quiet, ran too long, or outlived the shutdown grace
  proxy       send a request upstream with fallback and overflow: the hot path
  metrics     Prometheus metrics
  app         the FastAPI application and the gateway's background work
  server      uvicorn with the request-head limits, and draining on SIGTERM
"""
