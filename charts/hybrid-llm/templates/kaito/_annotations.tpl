{{/* KAITO annotations for a path's InferenceSet and the Workspaces it creates. */}}
{{- define "hybrid-llm.kaito.annotations" -}}
kaito.sh/runtime: vllm
{{- if .root.Values.kaito.disableBenchmark }}
kaito.sh/disable-benchmark: "true"
{{- end }}
{{- if ne .path.performanceMode "balanced" }}
kaito.sh/performance-mode: {{ .path.performanceMode }}
{{- end }}
{{- end -}}
