{{/*
Helpers, named by component: hybrid-llm.<component>.<thing>.
Templates that take one serving path are called with (dict "root" $ "name" "customer" "path" $path).
*/}}

{{- define "hybrid-llm.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 40 | trimSuffix "-" -}}
{{- end -}}

{{/* Object name prefix: "<release>-<chart>", or just the release name when it already holds the chart name. */}}
{{- define "hybrid-llm.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "hybrid-llm.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "hybrid-llm.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "hybrid-llm.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: hybrid-llm
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "hybrid-llm.selectorLabels" -}}
app.kubernetes.io/name: {{ include "hybrid-llm.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* The SKU table and Azure OpenAI prices, generated into files/figures.yaml from data/figures.yaml. */}}
{{- define "hybrid-llm.figures" -}}
{{- $figures := .Files.Get "files/figures.yaml" | fromYaml -}}
{{- if not $figures.skus -}}
{{- fail "charts/hybrid-llm/files/figures.yaml is missing or has no `skus:` map: run `make render` to regenerate it from data/figures.yaml" -}}
{{- end -}}
{{- toYaml $figures -}}
{{- end -}}

{{/* GPUs per node of a path's instanceType. Every template that needs it goes through here, so an unknown SKU fails the same clear way whichever template Helm renders first. */}}
{{- define "hybrid-llm.path.gpusPerNode" -}}
{{- $skus := (include "hybrid-llm.figures" .root | fromYaml).skus -}}
{{- $sku := get $skus .path.instanceType -}}
{{- if not $sku -}}
{{- fail (printf "paths.%s.instanceType %q is not in the SKU table (data/figures.yaml skus:). Known SKUs: %s. Fix: use one of them, or add the SKU with its GPU count and source to data/figures.yaml and run `make render`." .name .path.instanceType (keys $skus | sortAlpha | join ", ")) -}}
{{- end -}}
{{- $sku.gpus -}}
{{- end -}}

{{/* "true" when at least one serving path is enabled, else empty. */}}
{{- define "hybrid-llm.paths.anyEnabled" -}}
{{- range $name, $path := .Values.paths }}{{ if $path.enabled }}true{{ end }}{{ end -}}
{{- end -}}

{{/* "true" when KAITO schedules onto nodes this chart's pools bring (nodeProvisioner=byo), else empty. */}}
{{- define "hybrid-llm.kaito.byo" -}}
{{- if has .Values.nodePools.mode (list "nap" "aks") }}true{{ end -}}
{{- end -}}

{{/* Annotations for objects that must survive `helm uninstall`. */}}
{{- define "hybrid-llm.serving.keepAnnotation" -}}
{{- if .Values.serving.keepOnUninstall }}
helm.sh/resource-policy: keep
{{- end }}
{{- end -}}

{{/* ---------- serving paths ---------- */}}

{{/* InferenceSet name. vLLM serves the model under this name, so clients send it as "model". */}}
{{- define "hybrid-llm.path.name" -}}
{{- printf "%s-%s" (include "hybrid-llm.fullname" .root) .name -}}
{{- end -}}

{{- define "hybrid-llm.path.configMapName" -}}
{{- printf "%s-vllm-config" (include "hybrid-llm.path.name" .) -}}
{{- end -}}

{{- define "hybrid-llm.path.serviceName" -}}
{{- printf "%s-vllm" (include "hybrid-llm.path.name" .) -}}
{{- end -}}

{{- define "hybrid-llm.path.labels" -}}
{{ include "hybrid-llm.labels" .root }}
app.kubernetes.io/component: vllm-{{ .name }}
{{- end -}}

{{/* Labels KAITO copies onto the Workspaces it creates for a path: no Helm bookkeeping, since KAITO manages those. */}}
{{- define "hybrid-llm.path.childLabels" -}}
{{ include "hybrid-llm.selectorLabels" .root }}
app.kubernetes.io/part-of: hybrid-llm
app.kubernetes.io/component: vllm-{{ .name }}
{{- end -}}

{{/* Label KAITO puts on every pod of an InferenceSet's child Workspaces. */}}
{{- define "hybrid-llm.path.podSelector" -}}
inferenceset.kaito.sh/created-by: {{ include "hybrid-llm.path.name" . }}
{{- end -}}

{{/*
Node labels the path's pods require (KAITO turns labelSelector.matchLabels into required node
affinity, kaito pkg/workspace/inference/preset_inferences.go). The path label keeps each path on
its own pool; the capacity type and the SKU are required too, so a customer pod can never land on
a spot node: KAITO's pods tolerate the spot taint on Azure, so only the selector keeps them off.
nap: Karpenter sets karpenter.sh/capacity-type truthfully. aks: AKS writes
kubernetes.azure.com/scalesetpriority=spot on spot nodes but nothing on regular ones, so
scripts/nodepools.py labels every pool with hybrid-llm.io/capacity-type and the selector requires
it; otherwise an on-demand path would still match a spot pool's nodes after a flip. kaito mode with
KAITO's Karpenter: KAITO copies the labels into its per-Workspace NodePool's template, which
Karpenter turns into requirements (kaito pkg/nodeprovision/karpenter/nodepool.go generateNodePool);
without the capacity type Azure picks the cheapest offering, spot included.
*/}}
{{- define "hybrid-llm.path.nodeLabels" -}}
{{- $mode := .root.Values.nodePools.mode -}}
{{ .root.Values.nodePools.pathLabelKey }}: {{ .name }}
{{- if or (eq $mode "nap") (and (eq $mode "kaito") (eq .root.Values.kaito.nodeProvisioner "karpenter")) }}
karpenter.sh/capacity-type: {{ .path.capacityType }}
{{- end }}
{{- if eq $mode "aks" }}
{{ include "hybrid-llm.nodePool.capacityLabelKey" .root }}: {{ .path.capacityType }}
{{- if eq .path.capacityType "spot" }}
kubernetes.azure.com/scalesetpriority: spot
{{- end }}
{{- end }}
{{- if ne $mode "kaito" }}
node.kubernetes.io/instance-type: {{ .path.instanceType }}
{{- end }}
{{- end -}}

{{/* GPU taint on the path's nodes. KAITO's vLLM pods always tolerate sku=gpu:NoSchedule. */}}
{{- define "hybrid-llm.nodePool.gpuTaint" -}}
- key: sku
  value: gpu
  effect: NoSchedule
{{- end -}}

{{/* Taint on spot nodes. AKS adds it to spot agent pools; Karpenter on AKS does not, so nap mode adds it. KAITO's pods tolerate it on Azure. */}}
{{- define "hybrid-llm.nodePool.spotTaint" -}}
- key: kubernetes.azure.com/scalesetpriority
  value: spot
  effect: NoSchedule
{{- end -}}

{{- define "hybrid-llm.nodePool.name" -}}
{{- include "hybrid-llm.path.name" . -}}
{{- end -}}

{{- define "hybrid-llm.nodePool.nodeClassName" -}}
{{- printf "%s-gpu" (include "hybrid-llm.fullname" .) -}}
{{- end -}}

{{/* ---------- model access ---------- */}}

{{/* Name of the Secret with key HF_TOKEN that KAITO reads. */}}
{{- define "hybrid-llm.modelAccess.secretName" -}}
{{- if eq .Values.modelAccess.source "keyVault" -}}
{{- printf "%s-hf-token" (include "hybrid-llm.fullname" .) -}}
{{- else -}}
{{- .Values.modelAccess.existingSecret -}}
{{- end -}}
{{- end -}}

{{- define "hybrid-llm.modelAccess.syncerName" -}}
{{- printf "%s-hf-token-sync" (include "hybrid-llm.fullname" .) -}}
{{- end -}}

{{/* ---------- shared pod security ---------- */}}

{{- define "hybrid-llm.pod.securityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "hybrid-llm.container.securityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
allowPrivilegeEscalation: false
privileged: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/*
An image reference from {repository, tag, digest}. With a digest the runtime pulls by the digest
alone: `repository:tag@digest` when a tag is set too (containerd and CRI-O drop the tag of such a
reference, so the digest wins, while the tag keeps the version readable in manifests and `kubectl
describe`), `repository@digest` when the tag is empty; `repository:tag` otherwise.
*/}}
{{- define "hybrid-llm.image" -}}
{{- if and .digest .tag -}}
{{- printf "%s:%s@%s" .repository .tag .digest -}}
{{- else if .digest -}}
{{- printf "%s@%s" .repository .digest -}}
{{- else -}}
{{- printf "%s:%s" .repository .tag -}}
{{- end -}}
{{- end -}}

{{/*
The pull policy of an image: its pullPolicy when set; otherwise IfNotPresent for an image pinned by
digest (the content cannot change, so a registry round trip on every start buys nothing) and Always
for a tag-only one (a re-pushed tag is never served stale from a node's cache).
*/}}
{{- define "hybrid-llm.image.pullPolicy" -}}
{{- if .pullPolicy -}}
{{- .pullPolicy -}}
{{- else if .digest -}}
IfNotPresent
{{- else -}}
Always
{{- end -}}
{{- end -}}

{{/*
`imagePullSecrets:` for a pod spec from lists of {name} (the chart-wide imagePullSecrets plus a
component's own), each name once; empty when there are none (call it inside `with`).
*/}}
{{- define "hybrid-llm.imagePullSecrets" -}}
{{- $names := list -}}
{{- range . }}{{ range . }}{{ $names = append $names .name }}{{ end }}{{ end -}}
{{- with ($names | uniq) -}}
imagePullSecrets:
{{- range . }}
  - name: {{ . }}
{{- end }}
{{- end -}}
{{- end -}}

{{/* ---------- checkov skips ---------- */}}

{{/*
checkov's own skip annotations (checkov.io/skip<n>: <check id>=<reason>) from a list of
"<check id>=<reason>" strings (empty for none: call it inside `with`); checkov reads them from the
object's metadata. A reason must not
contain "=": checkov splits the value on it.
*/}}
{{- define "hybrid-llm.checkov.skips" -}}
{{- $lines := list -}}
{{- range $index, $skip := . }}{{ $lines = append $lines (printf "checkov.io/skip%d: %s" (add1 $index) ($skip | quote)) }}{{ end -}}
{{- join "\n" $lines -}}
{{- end -}}

{{/*
The skips an image earns, as a JSON list for hybrid-llm.checkov.skips. Called with
(dict "image" <image values> "unreleasedGateway" <bool>).
- CKV_K8S_15 (pull policy Always) only when the image is pinned by digest: then IfNotPresent runs
  exactly the same content. A tag-only image defaults to Always and is not skipped.
- CKV_K8S_43 (image digest) only for this chart's own gateway image at the chart's appVersion
  before its release: the release pipeline builds that image and writes gateway.image.digest into
  the published chart. Any other image without a digest fails the check, as it should.
*/}}
{{- define "hybrid-llm.checkov.imageSkips" -}}
{{- $skips := list -}}
{{- if and .image.digest (ne (include "hybrid-llm.image.pullPolicy" .image) "Always") -}}
{{- $skips = append $skips "CKV_K8S_15=the image is pinned by digest, so IfNotPresent runs the same content and Always would only add a registry round trip to each start" -}}
{{- end -}}
{{- if and .unreleasedGateway (not .image.digest) -}}
{{- $skips = append $skips "CKV_K8S_43=this chart's own gateway image before its release; the release pipeline writes gateway.image.digest into the published chart" -}}
{{- end -}}
{{- toJson $skips -}}
{{- end -}}

{{/* The gateway image as this chart's source carries it: its own repository at appVersion, no digest yet. */}}
{{- define "hybrid-llm.gateway.imageUnreleased" -}}
{{- $image := .Values.gateway.image -}}
{{- if and (eq $image.repository "ghcr.io/hybrid-llm/gateway") (eq $image.tag .Chart.AppVersion) (not $image.digest) }}true{{ end -}}
{{- end -}}

{{/* The checkov skips of a pod that runs the gateway image (the gateway and the apply-serving Jobs), as a JSON list. */}}
{{- define "hybrid-llm.checkov.gatewayImageSkips" -}}
{{- include "hybrid-llm.checkov.imageSkips" (dict "image" .Values.gateway.image "unreleasedGateway" (eq (include "hybrid-llm.gateway.imageUnreleased" .) "true")) -}}
{{- end -}}

{{/* ---------- the KAITO install this release expects ---------- */}}

{{- define "hybrid-llm.kaito.minimumVersion" -}}0.12.0{{- end -}}

{{- define "hybrid-llm.kaito.installName" -}}
{{- printf "%s-kaito-install" (include "hybrid-llm.fullname" .) -}}
{{- end -}}

{{/*
Values of KAITO's chart for this release. featureGates.disableNodeAutoProvisioning must be set with
nodeProvisioner=byo: KAITO's main.go overwrites the gate from the provisioner, but the chart installs
the gpu-feature-discovery subchart only when the gate value is true (kaito charts/kaito/workspace/Chart.yaml).
*/}}
{{- define "hybrid-llm.kaito.installValues" -}}
{{- $anySpot := false -}}
{{- range $name, $path := .Values.paths }}{{ if and $path.enabled (eq $path.capacityType "spot") }}{{ $anySpot = true }}{{ end }}{{ end -}}
nodeProvisioner: {{ .Values.kaito.nodeProvisioner }}
featureGates:
  disableNodeAutoProvisioning: {{ eq .Values.kaito.nodeProvisioner "byo" }}
  enableInferenceSetController: true
spotInstance:
  enabled: {{ .Values.kaito.spotInstanceEnabled }}
{{- if eq .Values.kaito.nodeProvisioner "byo" }}
gpu-feature-discovery:
  tolerations:
    {{- toYaml .Values.kaito.gpuFeatureDiscovery.tolerations | nindent 4 }}
  nfd:
    worker:
      tolerations:
        {{- toYaml .Values.kaito.gpuFeatureDiscovery.tolerations | nindent 8 }}
{{- end }}
{{- end -}}

{{/*
"true" when one of the tolerations (a list) tolerates the taint (a dict with key, value, effect),
by the scheduler's rule: an empty key with Exists tolerates everything; Exists matches any value;
an empty effect matches every effect.
*/}}
{{- define "hybrid-llm.tolerates" -}}
{{- $taint := .taint -}}
{{- range .tolerations -}}
{{- $effectOk := or (not .effect) (eq .effect $taint.effect) -}}
{{- if and $effectOk (eq .operator "Exists") (or (not .key) (eq .key $taint.key)) }}true{{ end -}}
{{- if and $effectOk (ne .operator "Exists") (eq (.key | default "") $taint.key) (eq (.value | default "") ($taint.value | default "")) }}true{{ end -}}
{{- end -}}
{{- end -}}

{{/* The taints of a path's GPU nodes, as a YAML list: sku=gpu always, the spot taint on spot. */}}
{{- define "hybrid-llm.path.nodeTaints" -}}
{{ include "hybrid-llm.nodePool.gpuTaint" .root }}
{{- if eq .path.capacityType "spot" }}
{{ include "hybrid-llm.nodePool.spotTaint" .root }}
{{- end }}
{{- end -}}

{{/*
The from-peer for the Prometheus that scrapes this release (monitoring.prometheus), as a
NetworkPolicy peer list item.
*/}}
{{- define "hybrid-llm.monitoring.prometheusPeer" -}}
- namespaceSelector:
    matchLabels:
      kubernetes.io/metadata.name: {{ .Values.monitoring.prometheus.namespace }}
  {{- with .Values.monitoring.prometheus.podLabels }}
  podSelector:
    matchLabels:
      {{- toYaml . | nindent 6 }}
  {{- end }}
{{- end -}}

{{/* ---------- byo serving: node anchors and the apply-serving Job ---------- */}}

{{- define "hybrid-llm.anchor.name" -}}
{{- printf "%s-node-anchor" (include "hybrid-llm.path.name" .) -}}
{{- end -}}

{{- define "hybrid-llm.serving.manifestsName" -}}
{{- printf "%s-serving" (include "hybrid-llm.fullname" .) -}}
{{- end -}}

{{- define "hybrid-llm.serving.applierName" -}}
{{- printf "%s-serving-applier" (include "hybrid-llm.fullname" .) -}}
{{- end -}}

{{/* Labels of the objects the apply-serving Job applies: Helm does not manage them, so no Helm bookkeeping. */}}
{{- define "hybrid-llm.serving.appliedLabels" -}}
{{ include "hybrid-llm.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: hybrid-llm
app.kubernetes.io/managed-by: {{ include "hybrid-llm.serving.applierName" . }}
{{- end -}}

{{/* Stands for the serving ConfigMap's UID in embedded InferenceSets; the Job substitutes the real one. */}}
{{- define "hybrid-llm.serving.ownerUidPlaceholder" -}}SERVING-CONFIGMAP-UID{{- end -}}

{{/* The path's node labels as a kubectl label selector (k=v,k=v). */}}
{{- define "hybrid-llm.path.nodeSelectorString" -}}
{{- $pairs := list -}}
{{- range $k, $v := (include "hybrid-llm.path.nodeLabels" . | fromYaml) }}{{ $pairs = append $pairs (printf "%s=%s" $k $v) }}{{ end -}}
{{- join "," $pairs -}}
{{- end -}}

{{/* Replicas the path wants: its value, or KEDA's floor when KEDA owns the batch path. */}}
{{- define "hybrid-llm.path.desiredReplicas" -}}
{{- if and (eq .name "batch") .root.Values.batchAutoscaling.enabled -}}
{{- .root.Values.batchAutoscaling.minReplicas -}}
{{- else -}}
{{- .path.replicas -}}
{{- end -}}
{{- end -}}

{{/*
The longest InferenceSet name KAITO's derived names allow. A child Workspace is <inferenceset>- plus
5 random characters (GenerateName, kaito pkg/utils/inferenceset/inferenceset.go
NewWorkspaceForInferenceSet); KAITO names the StatefulSet after it (pkg/workspace/manifests/manifests.go
GenerateStatefulSetManifest), and Kubernetes labels its pods controller-revision-hash=<statefulset>-<hash>,
the hash up to 10 characters (kubernetes pkg/controller/history ControllerRevisionName): 63 - 11 - 6 = 46.
With KAITO's own Karpenter provisioner the node is a VM named aks-<nodeclaim>, the NodeClaim
<nodepool>-<5>, the NodePool <namespace>-<workspace> (kaito pkg/nodeprovision/karpenter/nodepool.go
NodePoolName; karpenter-provider-azure pkg/providers/instance/vminstance.go GenerateResourceName), and
the node's 63-character hostname label then allows 46 - len(namespace).
*/}}
{{- define "hybrid-llm.kaito.maxInferenceSetName" -}}
{{- $max := 46 -}}
{{- if and (eq .Values.nodePools.mode "kaito") (eq .Values.kaito.nodeProvisioner "karpenter") -}}
{{- $max = sub 46 (len .Release.Namespace) -}}
{{- end -}}
{{- $max -}}
{{- end -}}

{{- define "hybrid-llm.kaito.maxInferenceSetNameWhy" -}}
{{- if and (eq .Values.nodePools.mode "kaito") (eq .Values.kaito.nodeProvisioner "karpenter") -}}
in namespace {{ .Release.Namespace }}: the GPU node's VM name aks-<namespace>-<workspace>-<5> and its hostname label, from KAITO's NodePool <namespace>-<workspace>
{{- else -}}
the StatefulSet's controller-revision-hash label <workspace>-<hash>
{{- end -}}
{{- end -}}

{{/*
Egress to the cluster's DNS as a NetworkPolicy egress rule: CoreDNS in kube-system (AKS labels it
k8s-app=kube-dns), and link-local addresses for a node-local DNS cache. Port 53 only.
*/}}
{{- define "hybrid-llm.networkPolicy.dnsEgress" -}}
- to:
    - namespaceSelector:
        matchLabels:
          kubernetes.io/metadata.name: kube-system
      podSelector:
        matchLabels:
          k8s-app: kube-dns
    - ipBlock:
        cidr: 169.254.0.0/16
  ports:
    - protocol: UDP
      port: 53
    - protocol: TCP
      port: 53
{{- end -}}

{{/* The label scripts/nodepools.py puts on every aks-mode pool: AKS marks spot nodes but not regular ones. */}}
{{- define "hybrid-llm.nodePool.capacityLabelKey" -}}hybrid-llm.io/capacity-type{{- end -}}
