{{/*
The serving objects of one path, as defines: rendered at the top level in kaito mode, and embedded
in the ConfigMap the applier Job reads in the byo node pool modes (nap, aks). Called with
(dict "root" $ "name" "customer" "path" $path).
*/}}

{{/*
The path's KAITO InferenceSet. An InferenceSet rather than a Workspace: it has spec.replicas and a
scale subresource (a Workspace has neither), so replicas come from values and an autoscaler can
drive the batch path.
*/}}
{{- define "hybrid-llm.path.inferenceSet" -}}
{{- $ := .root -}}
{{- $name := .name -}}
{{- $path := .path -}}
apiVersion: kaito.sh/v1beta1
kind: InferenceSet
metadata:
  name: {{ include "hybrid-llm.path.name" . }}
  namespace: {{ $.Release.Namespace }}
  labels:
    {{- if include "hybrid-llm.kaito.byo" $ }}
    {{- include "hybrid-llm.serving.appliedLabels" $ | nindent 4 }}
    app.kubernetes.io/component: vllm-{{ $name }}
    {{- else }}
    {{- include "hybrid-llm.path.labels" . | nindent 4 }}
    {{- end }}
    hybrid-llm.io/capacity-type: {{ $path.capacityType }}
  annotations:
    {{- if not (include "hybrid-llm.kaito.byo" $) }}
    {{- include "hybrid-llm.serving.keepAnnotation" $ | indent 4 }}
    {{- end }}
    {{- include "hybrid-llm.kaito.annotations" . | nindent 4 }}
    {{- if eq $.Values.modelAccess.source "existingSecret" }}
    # Created outside the chart (modelAccess.existingSecret); validators treat it as present.
    hybrid-llm.io/external-refs: Secret/{{ $.Values.modelAccess.existingSecret }}
    {{- end }}
  {{- if and (include "hybrid-llm.kaito.byo" $) (not $.Values.serving.keepOnUninstall) }}
  {{- /* Not a Helm object in byo modes: owned by the Helm-managed serving ConfigMap, so `helm uninstall` still removes it. The Job fills in the UID. */}}
  ownerReferences:
    - apiVersion: v1
      kind: ConfigMap
      name: {{ include "hybrid-llm.serving.manifestsName" $ }}
      uid: {{ include "hybrid-llm.serving.ownerUidPlaceholder" $ }}
  {{- end }}
spec:
  {{- if not (and (eq $name "batch") $.Values.batchAutoscaling.enabled) }}
  replicas: {{ $path.replicas }}
  {{- end }}
  labelSelector:
    matchLabels:
      {{- include "hybrid-llm.path.nodeLabels" . | nindent 6 }}
  {{- if eq $.Values.nodePools.mode "kaito" }}
  {{- /* KAITO creates at most this many GPU nodes for the path. */}}
  nodeCountLimit: {{ $path.nodePool.maxNodes }}
  {{- end }}
  template:
    metadata:
      labels:
        {{- include "hybrid-llm.path.childLabels" . | nindent 8 }}
      annotations:
        {{- include "hybrid-llm.kaito.annotations" . | nindent 8 }}
    {{- if eq $.Values.nodePools.mode "kaito" }}
    {{- /* KAITO's provisioner needs the SKU. In byo mode the webhook refuses one (kaito api/v1beta1/inferenceset_validation.go validateInstanceType); the pool pins it and the label selector requires it. */}}
    resource:
      instanceType: {{ $path.instanceType }}
    {{- end }}
    inference:
      preset:
        name: {{ $.Values.kaito.preset }}
        presetOptions:
          modelAccessSecret: {{ include "hybrid-llm.modelAccess.secretName" $ }}
      config: {{ include "hybrid-llm.path.configMapName" . }}
      {{- with $.Values.kaito.adapters }}
      adapters:
        {{- range . }}
        - source:
            name: {{ .name }}
            image: {{ .image }}
            {{- with .imagePullSecrets }}
            imagePullSecrets:
              {{- toYaml . | nindent 14 }}
            {{- end }}
        {{- end }}
      {{- end }}
{{- end -}}

{{/*
The path's node anchor (byo modes). KAITO in byo mode creates no pod until a Ready node matching the
path's label selector exists (kaito pkg/nodeprovision/byo-provisioner/byo_provisioner.go
EnsureNodesReady), and its webhook refuses the InferenceSet until such a node carries the GPU labels
(api/v1beta1/workspace_validation.go validateCreateWithInference: "No nodes found matching the
specified label selector"). With no Pending pod, neither Karpenter nor the cluster autoscaler adds
a node, so nothing would ever start. This pause pod is Pending on exactly the path's node labels and
taints, which makes the path's pool bring up one node. The applier Job creates it only while
the path has no admissible node, and deletes it once a vLLM pod holds the node, or when it gives up
waiting: left in place it would keep a node of its own after a scale-down, or start one hours later
when capacity returns. Rendered for both paths, enabled or not: deleting a byo InferenceSet needs a
matching node too (applier/teardown.py).
*/}}
{{- define "hybrid-llm.path.nodeAnchor" -}}
{{- $ := .root -}}
{{- $anchor := $.Values.serving.nodeAnchor -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "hybrid-llm.anchor.name" . }}
  namespace: {{ $.Release.Namespace }}
  labels:
    {{- include "hybrid-llm.serving.appliedLabels" $ | nindent 4 }}
    app.kubernetes.io/component: node-anchor-{{ .name }}
  annotations:
    {{- if eq $.Values.nodePools.mode "aks" }}
    {{- /* The pool is an AKS agent pool that scripts/nodepools.py creates, outside the render: this tells validators its node labels and taints. */}}
    hybrid-llm.io/external-node-pool: {{ dict "name" .path.nodePool.aksPoolName "labels" (include "hybrid-llm.path.nodeLabels" . | fromYaml) "taints" (include "hybrid-llm.path.nodeTaints" . | fromYamlArray) "osDiskSizeGB" $.Values.nodePools.aks.osDiskSizeGB | toJson | quote }}
    {{- end }}
    {{- $noProbe := "a pause container only holds a node for the path; there is nothing to probe" }}
    {{- $skips := concat (list (printf "CKV_K8S_8=%s" $noProbe) (printf "CKV_K8S_9=%s" $noProbe)) (include "hybrid-llm.checkov.imageSkips" (dict "image" $anchor.image) | fromJsonArray) }}
    {{- include "hybrid-llm.checkov.skips" $skips | nindent 4 }}
  {{- /* Owned by the Helm-managed serving ConfigMap whatever serving.keepOnUninstall says (an anchor is never worth keeping), so `helm uninstall` removes one a failed Job left. The applier fills in the UID. */}}
  ownerReferences:
    - apiVersion: v1
      kind: ConfigMap
      name: {{ include "hybrid-llm.serving.manifestsName" $ }}
      uid: {{ include "hybrid-llm.serving.ownerUidPlaceholder" $ }}
spec:
  replicas: 1
  revisionHistoryLimit: 1
  selector:
    matchLabels:
      {{- include "hybrid-llm.selectorLabels" $ | nindent 6 }}
      app.kubernetes.io/component: node-anchor-{{ .name }}
  template:
    metadata:
      labels:
        {{- include "hybrid-llm.selectorLabels" $ | nindent 8 }}
        app.kubernetes.io/component: node-anchor-{{ .name }}
      annotations:
        waive.hybrid-llm.io/probes: "a pause container only holds a node for the path; there is nothing to probe"
    spec:
      automountServiceAccountToken: false
      enableServiceLinks: false
      terminationGracePeriodSeconds: 0
      {{- with include "hybrid-llm.imagePullSecrets" (list $.Values.imagePullSecrets) }}
      {{- . | nindent 6 }}
      {{- end }}
      securityContext:
        {{- include "hybrid-llm.pod.securityContext" $ | nindent 8 }}
      nodeSelector:
        {{- include "hybrid-llm.path.nodeLabels" . | nindent 8 }}
      tolerations:
        {{- range (include "hybrid-llm.path.nodeTaints" . | fromYamlArray) }}
        - key: {{ .key }}
          operator: Equal
          value: {{ .value }}
          effect: {{ .effect }}
        {{- end }}
      containers:
        - name: pause
          image: {{ include "hybrid-llm.image" $anchor.image }}
          imagePullPolicy: {{ include "hybrid-llm.image.pullPolicy" $anchor.image }}
          securityContext:
            {{- include "hybrid-llm.container.securityContext" $ | nindent 12 }}
          resources:
            {{- toYaml $anchor.resources | nindent 12 }}
{{- end -}}
