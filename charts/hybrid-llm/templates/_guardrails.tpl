{{/*
Combinations that render valid YAML but cannot work, or put a 70B serving path at risk.
Each message names the value, says why, and says how to fix or override it.
The schema handles types, enums and ranges; these checks need more than one value.
*/}}
{{- define "hybrid-llm.guardrails" -}}
{{- $mode := .Values.nodePools.mode -}}
{{- $anyPath := false -}}
{{- $anySpot := false -}}

{{- /* vLLM flags that current vLLM no longer accepts (swap-space went in vLLM 0.18; the others with the V0 engine). */ -}}
{{- $removedFlags := list "swap-space" "num-scheduler-steps" "max-seq-len-to-capture" -}}
{{- /* Flags the structured values own; setting them again in extraArgs would silently win or conflict. */ -}}
{{- $ownedFlags := list "tensor-parallel-size" "max-model-len" "gpu-memory-utilization" "max-num-seqs" "max-num-batched-tokens" "enable-prefix-caching" "no-enable-prefix-caching" "served-model-name" "model" "port" -}}

{{- range $name, $path := .Values.paths }}
{{- if $path.enabled }}
{{- $anyPath = true -}}
{{- $at := printf "paths.%s" $name -}}

{{- if eq $path.capacityType "spot" }}
{{- $anySpot = true -}}
{{- if eq $mode "kaito" }}
{{- fail (printf "%s.capacityType is spot, but nodePools.mode is kaito: KAITO's own provisioning takes no capacity type from us (its Karpenter NodePool has no capacity-type requirement, kaito pkg/nodeprovision/karpenter/nodepool.go generateNodePool; gpu-provisioner creates regular-priority pools), so the chart pins kaito-mode paths to on-demand through the label selector and cannot ask for spot there, nor would spot nodes get the spot toleration KAITO's device plugin needs. Fix: set nodePools.mode=nap (Karpenter spot NodePool) or nodePools.mode=aks (AKS spot pool), or set %s.capacityType=on-demand." $at $at) }}
{{- end }}
{{- if and (eq $name "customer") (not $path.acknowledgeSpotEviction) }}
{{- fail (printf "%s.capacityType is spot: a spot eviction takes a customer replica away with 30 s notice and a 70B replacement needs minutes to load. Fix: keep paths.customer.capacityType=on-demand, or override with paths.customer.acknowledgeSpotEviction=true." $at) }}
{{- end }}
{{- end }}

{{- if not $path.vllm.enablePrefixCaching }}
{{- fail (printf "%s.vllm.enablePrefixCaching is false, but its off switch, --no-enable-prefix-caching, takes no value, and KAITO appends every inference_config entry as `--<flag> <value>` (kaito presets/workspace/inference/vllm/inference_api.py), which vLLM refuses or misreads. Fix: keep %s.vllm.enablePrefixCaching=true (vLLM's default)." $at $at) }}
{{- end }}

{{- /* Longest InferenceSet name: a child Workspace is named <inferenceset>-<5 random> (GenerateName), its StatefulSet carries that name, and the pods' controller-revision-hash label <statefulset>-<hash of up to 10> must fit a 63-character label value. */ -}}
{{- $isName := include "hybrid-llm.path.name" (dict "root" $ "name" $name "path" $path) }}
{{- $maxName := int (include "hybrid-llm.kaito.maxInferenceSetName" $) }}
{{- if not (regexMatch "^[a-z]" $isName) }}
{{- fail (printf "%s: the InferenceSet name %q must start with a letter: KAITO names a Service after each child Workspace, and Service names are DNS-1035 labels. Fix: set fullnameOverride, or a release name, that starts with a letter." $at $isName) }}
{{- end }}
{{- if gt (len $isName) $maxName }}
{{- fail (printf "%s: the InferenceSet name %q is %d characters; KAITO's names derived from it must fit 63-character label values, which allows at most %d here (%s). Fix: set fullnameOverride (or a shorter release name) so that \"<fullname>-%s\" has at most %d characters." $at $isName (len $isName) $maxName (include "hybrid-llm.kaito.maxInferenceSetNameWhy" $) $name $maxName) }}
{{- end }}

{{- if and (eq $name "customer") (lt (int $path.replicas) 1) }}
{{- fail (printf "%s.replicas is %d: the customer path keeps at least 1 replica because a 70B cold start takes minutes (node, image, 131 GiB of weights). Fix: set %s.replicas>=1, or set %s.enabled=false to run without the customer path." $at (int $path.replicas) $at $at) }}
{{- end }}

{{- $gpus := include "hybrid-llm.path.gpusPerNode" (dict "root" $ "name" $name "path" $path) | int }}
{{- if ne (int $path.vllm.tensorParallelSize) $gpus }}
{{- fail (printf "%s.vllm.tensorParallelSize is %d but %s has %d GPUs: one vLLM replica spans exactly one node's GPUs. Fix: set %s.vllm.tensorParallelSize=%d, or pick an instanceType with %d GPUs." $at (int $path.vllm.tensorParallelSize) $path.instanceType $gpus $at $gpus (int $path.vllm.tensorParallelSize)) }}
{{- end }}

{{- if gt (int $path.replicas) (int $path.nodePool.maxNodes) }}
{{- fail (printf "%s.replicas is %d but %s.nodePool.maxNodes is %d: each replica needs a whole node, so the extra replicas would stay Pending. Fix: raise %s.nodePool.maxNodes to at least %d, or lower the replicas." $at (int $path.replicas) $at (int $path.nodePool.maxNodes) $at (int $path.replicas)) }}
{{- end }}
{{- if gt (int $path.nodePool.minNodes) (int $path.nodePool.maxNodes) }}
{{- fail (printf "%s.nodePool.minNodes (%d) is above maxNodes (%d). Fix: make minNodes <= maxNodes." $at (int $path.nodePool.minNodes) (int $path.nodePool.maxNodes)) }}
{{- end }}
{{- if and (eq $name "customer") (eq $mode "aks") (lt (int $path.nodePool.minNodes) 1) }}
{{- fail (printf "%s.nodePool.minNodes is 0 in aks mode: the autoscaler could remove the customer node and the next request would wait minutes for a cold start. Fix: set %s.nodePool.minNodes>=1." $at $at) }}
{{- end }}

{{- range $flag, $value := $path.vllm.extraArgs }}
{{- if has $flag $removedFlags }}
{{- fail (printf "%s.vllm.extraArgs.%s: current vLLM (0.18 and later, shipped by KAITO 0.11+) no longer has --%s and would refuse to start or ignore it. Fix: remove it from %s.vllm.extraArgs." $at $flag $flag $at) }}
{{- end }}
{{- if and (kindIs "string" $value) (regexMatch "(?i)^(true|false|yes|no|on|off)$" $value) }}
{{- fail (printf "%s.vllm.extraArgs.%s is %q, a boolean written as a string: KAITO appends every inference_config entry as `--%s %s` (kaito presets/workspace/inference/vllm/inference_api.py KAITOArgumentParser.parse_args), and vLLM's boolean flags take no value, so the stray word lands in vLLM's optional positional model_tag or stops vLLM with \"unrecognized arguments\". KAITO cannot pass a valueless flag at all. Fix: remove the entry." $at $flag $value $flag $value) }}
{{- end }}
{{- if kindIs "bool" $value }}
{{- fail (printf "%s.vllm.extraArgs.%s is a boolean: KAITO appends every inference_config entry as `--%s %s` (kaito presets/workspace/inference/vllm/inference_api.py KAITOArgumentParser.parse_args), but vLLM's boolean flags take no value, so the stray %s lands in vLLM's optional positional model_tag, and a second one stops vLLM with \"unrecognized arguments\" (CrashLoopBackOff). KAITO cannot pass a valueless flag at all. Fix: remove the entry; use a flag that takes a value instead." $at $flag $flag (ternary "True" "False" $value) (ternary "True" "False" $value)) }}
{{- end }}
{{- if has $flag $ownedFlags }}
{{- fail (printf "%s.vllm.extraArgs.%s: this flag is set from a dedicated value (or by KAITO) and must not be set twice. Fix: remove it from extraArgs and use the %s.vllm field for it." $at $flag $at) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{- if $anyPath }}
{{- if and (has $mode (list "nap" "aks")) (ne .Values.kaito.nodeProvisioner "byo") }}
{{- fail (printf "nodePools.mode is %s, so this chart brings the GPU nodes, but kaito.nodeProvisioner is %s: KAITO would provision nodes of its own as well. Fix: install KAITO with --set nodeProvisioner=byo --set featureGates.disableNodeAutoProvisioning=true and set kaito.nodeProvisioner=byo, or use nodePools.mode=kaito." $mode .Values.kaito.nodeProvisioner) }}
{{- end }}
{{- if and (eq $mode "kaito") (eq .Values.kaito.nodeProvisioner "byo") }}
{{- fail "nodePools.mode is kaito but kaito.nodeProvisioner is byo: with byo KAITO creates no nodes and this chart renders no node pools, so the paths would stay Pending. Fix: set kaito.nodeProvisioner to karpenter or azure-gpu-provisioner (as KAITO is installed), or use nodePools.mode=nap or aks." }}
{{- end }}
{{- if include "hybrid-llm.kaito.byo" . }}
{{- range $name, $path := .Values.paths }}
{{- if $path.enabled }}
{{- range $taint := (include "hybrid-llm.path.nodeTaints" (dict "root" $ "name" $name "path" $path) | fromYamlArray) }}
{{- if not (include "hybrid-llm.tolerates" (dict "tolerations" $.Values.kaito.gpuFeatureDiscovery.tolerations "taint" $taint)) }}
{{- fail (printf "paths.%s: its GPU nodes carry the taint %s=%s:%s, which kaito.gpuFeatureDiscovery.tolerations does not tolerate. KAITO (byo) reads the GPU model, count and memory from the nvidia.com/gpu.* labels that gpu-feature-discovery and the NFD worker write (kaito pkg/sku/helpers.go GetGPUConfigFromNodeLabels); they would never run on those nodes, so KAITO's webhook would refuse the InferenceSet forever. Fix: install KAITO with --set-json for gpu-feature-discovery.tolerations and gpu-feature-discovery.nfd.worker.tolerations that include it (see the README), and list it in kaito.gpuFeatureDiscovery.tolerations." $name $taint.key $taint.value $taint.effect) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- /* byo: KAITO sees an unknown SKU, assumes no NVMe and keeps the weights in an emptyDir on the OS disk (kaito pkg/utils/common_preset.go, pkg/sku/helpers.go). */ -}}
{{- $weights := get ((include "hybrid-llm.figures" . | fromYaml).models | default dict) (lower .Values.kaito.preset) }}
{{- if and $weights (include "hybrid-llm.kaito.byo" .) }}
{{- $disk := ternary .Values.nodePools.nap.osDiskSizeGB .Values.nodePools.aks.osDiskSizeGB (eq $mode "nap") }}
{{- if lt (int $disk) (int $weights.minOsDiskGB) }}
{{- fail (printf "nodePools.%s.osDiskSizeGB is %d, but with nodeProvisioner=byo KAITO keeps the %d GB of %s weights in an emptyDir on the node's OS disk (kaito pkg/utils/common_preset.go; byo nodes are SKU \"unknown\", so no NVMe), and with the system and the kubelet's eviction headroom that needs at least %d GB (data/figures.yaml nodeDisk). Fix: set nodePools.%s.osDiskSizeGB to %d or more; the default, 300, leaves room for the image cache." $mode (int $disk) (int $weights.weightsGB) .Values.kaito.preset (int $weights.minOsDiskGB) $mode (int $weights.minOsDiskGB)) }}
{{- end }}
{{- end }}
{{- if and $anySpot (not .Values.kaito.spotInstanceEnabled) }}
{{- fail "a path runs on spot but kaito.spotInstanceEnabled is false: KAITO's NVIDIA device plugin would not tolerate the spot taint, so spot nodes would report no nvidia.com/gpu and the path would never start. Fix: install KAITO with --set spotInstance.enabled=true and set kaito.spotInstanceEnabled=true, or move the path to on-demand." }}
{{- end }}
{{- if eq .Values.modelAccess.source "keyVault" }}
{{- range $field := list "vaultName" "tenantId" "clientId" }}
{{- if not (get $.Values.modelAccess.keyVault $field) }}
{{- fail (printf "modelAccess.source is keyVault but modelAccess.keyVault.%s is empty: the SecretProviderClass cannot reach the vault without it. Fix: set modelAccess.keyVault.%s, or use modelAccess.source=existingSecret." $field $field) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{- $scale := .Values.batchAutoscaling }}
{{- if $scale.enabled }}
{{- if not .Values.paths.batch.enabled }}
{{- fail "batchAutoscaling.enabled is true but paths.batch.enabled is false: there is no batch InferenceSet to scale. Fix: enable the batch path or set batchAutoscaling.enabled=false." }}
{{- end }}
{{- if and (include "hybrid-llm.kaito.byo" .) (lt (int $scale.minReplicas) 1) }}
{{- fail (printf "batchAutoscaling.minReplicas is 0 with nodePools.mode=%s (KAITO nodeProvisioner=byo): at zero the batch pool has no node, and KAITO's webhook refuses every child Workspace and every InferenceSet update while no node matches (kaito api/v1beta1/workspace_validation.go validateCreateWithInference), while KAITO itself never creates a Pending pod that would bring one up (pkg/nodeprovision/byo-provisioner/byo_provisioner.go). KEDA would scale the InferenceSet up and nothing would ever start. Fix: set batchAutoscaling.minReplicas>=1, or park the path with paths.batch.replicas=0 and batchAutoscaling.enabled=false (an upgrade back to 1 brings a node up first)." .Values.nodePools.mode) }}
{{- end }}
{{- if gt (int $scale.minReplicas) (int $scale.maxReplicas) }}
{{- fail (printf "batchAutoscaling.minReplicas (%d) is above maxReplicas (%d). Fix: make minReplicas <= maxReplicas." (int $scale.minReplicas) (int $scale.maxReplicas)) }}
{{- end }}
{{- if gt (int $scale.maxReplicas) (int .Values.paths.batch.nodePool.maxNodes) }}
{{- fail (printf "batchAutoscaling.maxReplicas (%d) is above paths.batch.nodePool.maxNodes (%d): the extra replicas would wait for nodes that never come. Fix: raise paths.batch.nodePool.maxNodes or lower maxReplicas." (int $scale.maxReplicas) (int .Values.paths.batch.nodePool.maxNodes)) }}
{{- end }}
{{- if and (not .Values.monitoring.serviceMonitor) (not $scale.gatewayScrapedOtherwise) }}
{{- fail "batchAutoscaling.enabled is true but monitoring.serviceMonitor is false: KEDA's query reads llm_gateway_requests_total{namespace=...,route=\"batch\"} from Prometheus, which has it only if it scrapes the gateway (the namespace label comes from the ServiceMonitor scrape); with no data the batch path stays at minReplicas whatever the demand. Fix: set monitoring.serviceMonitor=true (and monitoring.labels to what your Prometheus selects), or set batchAutoscaling.gatewayScrapedOtherwise=true if another scrape config collects the gateway's metrics with a namespace label." }}
{{- end }}
{{- if not .Values.gateway.enabled }}
{{- fail "batchAutoscaling scales on the gateway's batch demand (llm_gateway_requests_total{route=\"batch\"}), but gateway.enabled is false. Fix: enable the gateway, or scale the batch path some other way." }}
{{- end }}
{{- end }}
{{- if .Values.monitoring.dashboard.enabled }}
{{- $vmPrices := (include "hybrid-llm.figures" . | fromYaml).vmPrices | default dict }}
{{- range $name, $path := .Values.paths }}
{{- if $path.enabled }}
{{- $kind := ternary "spot" "onDemand" (eq $path.capacityType "spot") }}
{{- $regions := get (get $vmPrices $path.instanceType | default dict) $kind | default dict }}
{{- if not (hasKey $regions $.Values.monitoring.dashboard.region) }}
{{- fail (printf "monitoring.dashboard.region %q has no %s price for %s in data/figures.yaml (known: %s), so the dashboard's cost panels would show $0. Fix: set monitoring.dashboard.region to one of those, or add the price with its source." $.Values.monitoring.dashboard.region $kind $path.instanceType (keys $regions | sortAlpha | join ", ")) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- if and (not $anyPath) (not .Values.azureOpenAI.enabled) }}
{{- fail "both serving paths are disabled and azureOpenAI.enabled is false: there is nothing to serve. Fix: enable paths.customer or paths.batch, or set azureOpenAI.enabled=true." }}
{{- end }}
{{- $aoai := .Values.azureOpenAI }}
{{- if $aoai.enabled }}
{{- if not $aoai.deployments }}
{{- fail "azureOpenAI.enabled is true but azureOpenAI.deployments is empty: requests could not name an Azure OpenAI deployment. Fix: add one, for example azureOpenAI.deployments.gpt-5.4-mini={deployment: gpt-5.4-mini, priceModel: gpt-5.4-mini}." }}
{{- end }}
{{- if not (hasKey $aoai.deployments $aoai.fallbackModel) }}
{{- fail (printf "azureOpenAI.fallbackModel %q is not a key of azureOpenAI.deployments (%s): self-hosted routes would fall back to nothing. Fix: name one of the deployments." $aoai.fallbackModel (keys $aoai.deployments | sortAlpha | join ", ")) }}
{{- end }}
{{- $prices := (include "hybrid-llm.figures" . | fromYaml).azureOpenAIPrices | default dict }}
{{- range $public, $d := $aoai.deployments }}
{{- if and (not $d.pricing) (not (hasKey $prices ($d.priceModel | default ""))) }}
{{- fail (printf "azureOpenAI.deployments.%s: priceModel %q has no prices in data/figures.yaml (known: %s), so the gateway could not count its cost. Fix: set priceModel to one of those, add the model with its source to data/figures.yaml, or set azureOpenAI.deployments.%s.pricing." $public ($d.priceModel | default "") (keys $prices | sortAlpha | join ", ") $public) }}
{{- end }}
{{- end }}
{{- end }}
{{- if .Values.gateway.enabled }}
{{- $g := .Values.gateway }}
{{- if and $g.forceAzureOpenAI (not $aoai.enabled) }}
{{- fail "gateway.forceAzureOpenAI is true but azureOpenAI.enabled is false: every route would have no backend. Fix: enable azureOpenAI (endpoint, deployments), or turn the switch off." }}
{{- end }}
{{- $names := prepend $g.codeAliases $g.publicModel }}
{{- range .Values.kaito.adapters }}{{ $names = append $names .name }}{{ end }}
{{- range $name := $names }}
{{- if and $aoai.enabled (hasKey $aoai.deployments $name) }}
{{- fail (printf "gateway model name %q is also an Azure OpenAI deployment name in azureOpenAI.deployments: clients could not tell which they get. Fix: rename gateway.publicModel, the gateway.codeAliases entry, the kaito.adapters entry or the deployment key." $name) }}
{{- end }}
{{- end }}
{{- if ne (len $names) (len (uniq $names)) }}
{{- fail (printf "gateway model names repeat across gateway.publicModel, gateway.codeAliases and kaito.adapters (%s). Fix: give each a distinct name." (join ", " $names)) }}
{{- end }}
{{- /* Env the chart sets itself; a second entry with the same name would silently replace or lose to it. */ -}}
{{- $chartEnv := list "PYTHONUNBUFFERED" }}
{{- $seenEnv := list }}
{{- range $g.extraEnv }}
{{- if has .name $chartEnv }}
{{- fail (printf "gateway.extraEnv sets %s, which the chart sets itself on the gateway container: one of the two would silently win. Fix: remove that entry from gateway.extraEnv." .name) }}
{{- end }}
{{- if has .name $seenEnv }}
{{- fail (printf "gateway.extraEnv sets %s twice: Kubernetes keeps only one of them. Fix: keep one entry for %s." .name .name) }}
{{- end }}
{{- $seenEnv = append $seenEnv .name }}
{{- end }}
{{- if gt (int $g.autoscaling.minReplicas) (int $g.autoscaling.maxReplicas) }}
{{- fail (printf "gateway.autoscaling.minReplicas (%d) is above maxReplicas (%d). Fix: make minReplicas <= maxReplicas." (int $g.autoscaling.minReplicas) (int $g.autoscaling.maxReplicas)) }}
{{- end }}
{{- range $name, $split := $g.splits }}
{{- if $split.enabled }}
{{- $at := printf "gateway.splits.%s" $name }}
{{- if not (get $.Values.paths $name).enabled }}
{{- fail (printf "%s.enabled is true but paths.%s.enabled is false: the split's vllm-%s arm does not exist. Fix: enable the path, or set %s.enabled=false." $at $name $name $at) }}
{{- end }}
{{- if not $aoai.enabled }}
{{- fail (printf "%s.enabled is true but azureOpenAI.enabled is false: the split's other arm is the Azure OpenAI deployment azureOpenAI.fallbackModel, which does not exist. Fix: enable azureOpenAI (endpoint, deployments), or set %s.enabled=false." $at $at) }}
{{- end }}
{{- if and (le (float64 $split.vllmWeight) 0.0) (le (float64 $split.azureOpenAIWeight) 0.0) }}
{{- fail (printf "%s.vllmWeight and %s.azureOpenAIWeight are both 0: no arm would get the %s route's requests. Fix: give at least one arm a weight above 0 (an arm at 0 is drained), or set %s.enabled=false." $at $at $name $at) }}
{{- end }}
{{- if and (eq $split.stickyBy "key") (not $g.auth.enabled) }}
{{- fail (printf "%s.stickyBy is key but gateway.auth.enabled is false: without keys every request looks the same and would land on one arm. Fix: set %s.stickyBy=header:<name> (a header your clients send, such as x-llm-user), or turn gateway.auth on." $at $at) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- /* An image needs a tag or a digest; a bare repository means whatever `latest` is on the day. */ -}}
{{- $images := dict "gateway.image" .Values.gateway.image "gateway.test.image" .Values.gateway.test.image "modelAccess.keyVault.syncer.image" .Values.modelAccess.keyVault.syncer.image "serving.nodeAnchor.image" .Values.serving.nodeAnchor.image }}
{{- range $at, $image := $images }}
{{- if not (or $image.tag $image.digest) }}
{{- fail (printf "%s has neither a tag nor a digest: %s alone would pull whatever `latest` is on the day. Fix: set %s.tag to a version, or %s.digest to the sha256 digest to pull." $at $image.repository $at $at) }}
{{- end }}
{{- end }}
{{- end -}}
