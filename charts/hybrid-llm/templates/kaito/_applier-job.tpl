{{/*
A hook Job that runs the serving applier (applier/ in the repository, shipped in the gateway image):
the post-install/post-upgrade/post-rollback apply, and, with serving.keepOnUninstall=false, the
pre-upgrade/pre-rollback prune and the pre-delete teardown. Called with
(dict "root" $ "name" <Job name> "component" <Job label> "hook" <helm.sh/hook> "args" <list>
"optionalManifests" <bool>).

- Its pods carry the applier's labels, so the applier's NetworkPolicy and RBAC cover all three.
- Disruption: the Job may wait up to an hour on a CPU node that NAP or the cluster autoscaler
  would otherwise drain (karpenter v1.14.0 pkg/utils/pod/scheduling.go IsDoNotDisruptActive;
  cluster-autoscaler's safe-to-evict annotation). If it is evicted all the same (a spot CPU node, a
  node upgrade), podFailurePolicy ignores the failure (the DisruptionTarget condition the kubelet
  and the eviction API set) and the Job starts a new pod: the applier picks up where the cluster
  is. The applier's own failures (exit 1: the log says why; 2: wrong invocation) fail the Job at
  once; anything else counts against backoffLimit.
- helm.sh/hook-output-log-policy: Helm copies the pod's log to its own output (stderr) when the
  hook succeeds or fails (helm v3.21.4 pkg/action/hooks.go execHook -> outputLogsByPolicy, Job
  pods by job-name, written through cmd/helm/helm.go hookOutputWriter; v4.2.4 pkg/action/hooks.go,
  pkg/cmd/root.go; the annotation: HookOutputLogAnnotation in v3 pkg/release/hook.go, v4
  pkg/release/v1/hook.go), before hook-succeeded deletes the Job: the operator sees the warnings.
- activeDeadlineSeconds: the node wait plus the pod wait plus 240 s for the applier's own requests;
  Helm's --timeout (the README's 60m) must cover it plus the pod's start (tests/test_install_docs.py).
*/}}
{{- define "hybrid-llm.serving.applierJob" -}}
{{- $ := .root -}}
{{- $applier := $.Values.serving.applier -}}
{{- $manifests := include "hybrid-llm.serving.manifestsName" $ -}}
apiVersion: batch/v1
kind: Job
metadata:
  name: {{ .name }}
  namespace: {{ $.Release.Namespace }}
  labels:
    {{- include "hybrid-llm.labels" $ | nindent 4 }}
    app.kubernetes.io/component: {{ .component }}
  annotations:
    helm.sh/hook: {{ .hook }}
    helm.sh/hook-weight: "0"
    {{- /* Kept after a failure, so its log (the diagnosis) can be read. */}}
    helm.sh/hook-delete-policy: before-hook-creation,hook-succeeded
    helm.sh/hook-output-log-policy: hook-succeeded,hook-failed
    {{- $skips := concat (list "CKV_K8S_38=the applier reads nodes and applies the InferenceSets and node anchors through the Kubernetes API, so its pod needs the service account token") (include "hybrid-llm.checkov.gatewayImageSkips" $ | fromJsonArray) }}
    {{- include "hybrid-llm.checkov.skips" $skips | nindent 4 }}
spec:
  backoffLimit: 2
  podFailurePolicy:
    rules:
      - action: Ignore
        onPodConditions:
          - type: DisruptionTarget
            status: "True"
      - action: FailJob
        onExitCodes:
          containerName: apply
          operator: In
          values: [1, 2]
  activeDeadlineSeconds: {{ add $applier.nodeTimeoutSeconds $applier.podTimeoutSeconds 240 }}
  template:
    metadata:
      labels:
        {{- include "hybrid-llm.selectorLabels" $ | nindent 8 }}
        app.kubernetes.io/component: serving-applier
      annotations:
        karpenter.sh/do-not-disrupt: "true"
        cluster-autoscaler.kubernetes.io/safe-to-evict: "false"
        waive.hybrid-llm.io/probes: "a run-to-completion Job: its exit code is its health"
        waive.hybrid-llm.io/service-account-token: "it reads nodes and applies the InferenceSets and node anchors through the API"
    spec:
      serviceAccountName: {{ include "hybrid-llm.serving.applierName" $ }}
      restartPolicy: Never
      enableServiceLinks: false
      {{- /* The gateway image's pull secrets and security contexts: the user and filesystem settings belong to the image. */}}
      {{- with include "hybrid-llm.imagePullSecrets" (list $.Values.imagePullSecrets $.Values.gateway.imagePullSecrets) }}
      {{- . | nindent 6 }}
      {{- end }}
      securityContext:
        {{- toYaml $.Values.gateway.podSecurityContext | nindent 8 }}
      containers:
        - name: apply
          {{- /* The gateway image carries the applier (gateway/Dockerfile); its values, not the gateway Deployment, so this works with gateway.enabled=false. */}}
          image: {{ include "hybrid-llm.image" $.Values.gateway.image }}
          imagePullPolicy: {{ include "hybrid-llm.image.pullPolicy" $.Values.gateway.image }}
          command: ["python", "-m", "applier"]
          args:
            - --manifests=/etc/hybrid-llm/serving
            - --namespace={{ $.Release.Namespace }}
            - --release={{ $.Release.Name }}
            - --node-timeout-seconds={{ $applier.nodeTimeoutSeconds }}
            - --pod-timeout-seconds={{ $applier.podTimeoutSeconds }}
            - --poll-seconds={{ $applier.pollSeconds }}
            {{- /* Always: the anchors are owned by the serving ConfigMap, so `helm uninstall` removes any a failed run left. */}}
            - --owner-configmap={{ $manifests }}
            - --owner-uid-placeholder={{ include "hybrid-llm.serving.ownerUidPlaceholder" $ }}
            {{- range .args }}
            - {{ . }}
            {{- end }}
          securityContext:
            {{- toYaml $.Values.gateway.securityContext | nindent 12 }}
          resources:
            {{- toYaml $applier.resources | nindent 12 }}
          volumeMounts:
            - name: serving
              mountPath: /etc/hybrid-llm/serving
              readOnly: true
      volumes:
        - name: serving
          configMap:
            name: {{ $manifests }}
            {{- if .optionalManifests }}
            {{- /* Before an upgrade it is the previous revision's, which may have had no serving path. */}}
            optional: true
            {{- end }}
{{- end -}}
