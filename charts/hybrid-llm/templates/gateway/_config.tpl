{{/*
The gateway's config file, derived from the enabled paths and the Azure OpenAI deployments.
Backends: vllm-<path> for each enabled path, azure-<public model> for each deployment.
Routes: customer, batch, structured (schema-strict output) and azure-<public model>. With
gateway.splits.<path>.enabled, the path's route is an A/B split between vllm-<path> and the
Azure OpenAI fallback deployment instead of a primary.
*/}}

{{- define "hybrid-llm.gateway.name" -}}
{{- printf "%s-gateway" (include "hybrid-llm.fullname" .) -}}
{{- end -}}

{{- define "hybrid-llm.gateway.selectorLabels" -}}
{{ include "hybrid-llm.selectorLabels" . }}
app.kubernetes.io/component: gateway
{{- end -}}

{{- define "hybrid-llm.gateway.labels" -}}
{{ include "hybrid-llm.labels" . }}
app.kubernetes.io/component: gateway
{{- end -}}

{{- define "hybrid-llm.gateway.azureBackend" -}}
{{- printf "azure-%s" (. | lower | replace "." "-") -}}
{{- end -}}

{{/* Where the Azure OpenAI api key file is mounted (auth mode apiKey). */}}
{{- define "hybrid-llm.gateway.apiKeyDir" -}}/var/run/secrets/hybrid-llm/azure-openai{{- end -}}

{{- define "hybrid-llm.gateway.config" -}}
{{- $g := .Values.gateway -}}
{{- $aoai := .Values.azureOpenAI -}}
{{- $prices := (include "hybrid-llm.figures" . | fromYaml).azureOpenAIPrices | default dict -}}
{{- $backends := dict -}}
{{- $routes := dict -}}
{{- $models := dict -}}

{{- range $name, $path := .Values.paths }}
{{- if $path.enabled }}
{{- $ctx := dict "root" $ "name" $name "path" $path }}
{{- $perReplica := $g.maxInFlightPerReplica | default $path.vllm.maxNumSeqs | int }}
{{- $_ := set $backends (printf "vllm-%s" $name) (dict
      "kind" "vllm"
      "baseURL" (printf "http://%s.%s.svc.cluster.local/v1" (include "hybrid-llm.path.serviceName" $ctx) $.Release.Namespace)
      "model" (include "hybrid-llm.path.name" $ctx)
      "maxInFlight" (mul $perReplica (max 1 (int $path.replicas)))
      "firstByteTimeoutSeconds" $g.vllmFirstByteTimeoutSeconds
      "connectTimeoutSeconds" $g.connectTimeoutSeconds
      "streamIdleTimeoutSeconds" $g.streamIdleTimeoutSeconds
      "requestTimeoutSeconds" $g.requestTimeoutSeconds) }}
{{- end }}
{{- end }}

{{- $fallback := "" }}
{{- if $aoai.enabled }}
{{- $fallback = include "hybrid-llm.gateway.azureBackend" $aoai.fallbackModel }}
{{- range $public, $d := $aoai.deployments }}
{{- $pricing := $d.pricing }}
{{- if not $pricing }}
{{- $pricing = get $prices ($d.priceModel | default "") }}
{{- end }}
{{- $auth := dict "type" "entra" }}
{{- if eq $aoai.auth.mode "apiKey" }}
{{- $auth = dict "type" "apiKey" "apiKeyFile" (printf "%s/%s" (include "hybrid-llm.gateway.apiKeyDir" $) $aoai.auth.apiKeySecret.key) }}
{{- else if $aoai.auth.clientId }}
{{- $_ := set $auth "clientId" $aoai.auth.clientId }}
{{- end }}
{{- $backend := dict "kind" "azure-openai" "endpoint" (trimSuffix "/" $aoai.endpoint) "deployment" $d.deployment
      "apiMode" $aoai.apiMode "apiVersion" $aoai.apiVersion "auth" $auth "pricing" $pricing
      "firstByteTimeoutSeconds" $g.azureFirstByteTimeoutSeconds "connectTimeoutSeconds" $g.connectTimeoutSeconds
      "streamIdleTimeoutSeconds" $g.streamIdleTimeoutSeconds "requestTimeoutSeconds" $g.requestTimeoutSeconds }}
{{- $backendName := include "hybrid-llm.gateway.azureBackend" $public }}
{{- $_ := set $backends $backendName $backend }}
{{- $_ := set $routes $backendName (dict "primary" $backendName) }}
{{- $_ := set $models $public (dict "route" $backendName) }}
{{- end }}
{{- $_ := set $routes "structured" (dict "primary" $fallback) }}
{{- end }}

{{- /* Self-hosted routes: their own path first, then the configured spill-over. */}}
{{- $customer := list }}
{{- $batch := list }}
{{- if $g.forceAzureOpenAI }}
{{- /* Incident switch: every route goes to Azure OpenAI alone. */}}
{{- $customer = list $fallback }}
{{- $batch = list $fallback }}
{{- else }}
{{- if .Values.paths.customer.enabled }}{{ $customer = append $customer "vllm-customer" }}{{ end }}
{{- if $fallback }}{{ $customer = append $customer $fallback }}{{ end }}
{{- if .Values.paths.batch.enabled }}{{ $batch = append $batch "vllm-batch" }}{{ end }}
{{- range $g.batchFallbacks }}
{{- if and (eq . "customer") $.Values.paths.customer.enabled }}{{ $batch = append $batch "vllm-customer" }}{{ end }}
{{- if and (eq . "azureOpenAI") $fallback }}{{ $batch = append $batch $fallback }}{{ end }}
{{- end }}
{{- end }}
{{- $classRoutes := dict }}
{{- range $route, $chain := dict "customer" $customer "batch" $batch }}
{{- if $chain }}
{{- $split := get $g.splits $route }}
{{- if and $split.enabled (not $g.forceAzureOpenAI) }}
{{- /* A/B: the path's vLLM backend and Azure OpenAI as weighted arms; each falls back along the
     path's usual chain (the gateway skips an arm in its own chain). Guardrails checked the arms. */}}
{{- $arms := list (dict "backend" (printf "vllm-%s" $route) "weight" $split.vllmWeight)
      (dict "backend" $fallback "weight" $split.azureOpenAIWeight) }}
{{- $_ := set $routes $route (dict "split" $arms "fallbacks" $chain) }}
{{- if $split.stickyBy }}{{ $_ := set (get $routes $route) "stickyBy" $split.stickyBy }}{{ end }}
{{- else }}
{{- $_ := set $routes $route (dict "primary" (first $chain) "fallbacks" (rest $chain)) }}
{{- end }}
{{- if and (eq $route "batch") $.Values.paths.batch.enabled $g.batchQueueSeconds (not $g.forceAzureOpenAI) }}
{{- $_ := set (get $routes "batch") "queueSeconds" $g.batchQueueSeconds }}
{{- end }}
{{- $_ := set $classRoutes $route $route }}
{{- end }}
{{- end }}
{{- $default := "" }}
{{- if $customer }}{{ $default = "customer" }}{{ else if $batch }}{{ $default = "batch" }}{{ else }}{{ $default = $fallback }}{{ end }}

{{- $_ := set $models $g.publicModel dict }}
{{- /* LoRA adapters: public under their own names, served by vLLM under the same name. */}}
{{- range .Values.kaito.adapters }}
{{- $_ := set $models .name (dict "route" $default "vllmModel" .name) }}
{{- end }}
{{- range $g.codeAliases }}
{{- $_ := set $models . (dict "route" (ternary "customer" $default (hasKey $routes "customer"))) }}
{{- end }}

{{- $routing := dict "order" (list "backendHeader" "classHeader" "structuredOutput" "model")
      "backendHeader" "x-llm-backend" "classHeader" "x-llm-class"
      "classRoutes" $classRoutes "defaultRoute" $default }}
{{- if $fallback }}{{ $_ := set $routing "structuredOutputRoute" "structured" }}{{ end }}
{{- $auth := dict "enabled" $g.auth.enabled }}
{{- if $g.auth.enabled }}
{{- $_ := set $auth "keysFile" "/etc/hybrid-llm/keys/keys.yaml" }}
{{- $_ := set $auth "reloadSeconds" $g.auth.reloadSeconds }}
{{- end }}
{{- $server := dict "maxHeaderBytes" (int $g.maxHeaderBytes) "maxBodyBytes" (int $g.maxBodyBytes)
      "uploadTimeoutSeconds" $g.uploadTimeoutSeconds "maxUpstreamBodyBytes" (int $g.maxUpstreamBodyBytes)
      "shutdownGraceSeconds" (int $g.shutdownGraceSeconds) }}
{{- toYaml (dict
      "server" $server
      "auth" $auth "backends" $backends "routes" $routes "routing" $routing "models" $models) }}
{{- end -}}
