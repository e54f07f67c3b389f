#!/usr/bin/env bash
# Applies each serving path's KAITO InferenceSet once KAITO will admit it (byo node pool modes).
#
# Why a Job and not a plain Helm object: with nodeProvisioner=byo, KAITO's admission webhook lists
# the nodes matching the InferenceSet's label selector and refuses the object when there are none,
# or when any of them lacks the nvidia.com/gpu.{product,count,memory} labels GPU feature discovery
# writes (kaito-project/kaito api/v1beta1/workspace_validation.go validateCreateWithInference, run
# for InferenceSets by pkg/utils/inferenceset/inferenceset.go ValidateWorkspaceForInferenceSet, on
# create and on every update). KAITO itself never creates a Pending pod in byo mode
# (pkg/nodeprovision/byo-provisioner/byo_provisioner.go), so nothing would bring the node up.
# For each path this script:
#   1. checks whether the path has an admissible node: at least one Ready matching node, and every
#      matching node GPU-labelled;
#   2. if not, and the path wants replicas, creates the path's node anchor (a pause pod that is
#      Pending on the path's labels and taints, so Karpenter or the cluster autoscaler adds a node)
#      and waits for one;
#   3. server-side-applies the InferenceSet, retrying while the webhook still refuses it;
#   4. waits until a vLLM pod of the path is bound to a node that matches the selector, then
#      deletes the anchor, so a later scale-down can empty and release that node. If the selector
#      changed under running replicas (a capacity flip), it keeps the anchor and says how to roll
#      them, since KAITO does not move running replicas.
# A path parked at 0 replicas with no node is left as it is: the webhook would refuse any change,
# and its template is applied when it is unparked. Files in $MANIFESTS_DIR: plan.tsv (one line per
# path: name, InferenceSet, replicas, node label selector, anchor Deployment) and, per path,
# <name>.inferenceset.yaml and <name>.node-anchor.yaml.
set -euo pipefail

: "${NAMESPACE:?NAMESPACE must be set}"
: "${MANIFESTS_DIR:?MANIFESTS_DIR must be set}"
NODE_TIMEOUT_SECONDS="${NODE_TIMEOUT_SECONDS:-2400}"
POD_TIMEOUT_SECONDS="${POD_TIMEOUT_SECONDS:-900}"
POLL_SECONDS="${POLL_SECONDS:-15}"
FIELD_MANAGER="${FIELD_MANAGER:-hybrid-llm}"
OWNER_CONFIGMAP="${OWNER_CONFIGMAP:-}"
OWNER_UID_PLACEHOLDER="${OWNER_UID_PLACEHOLDER:-}"
KUBECTL="${KUBECTL:-kubectl}"

log() { printf '%s %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*"; }
k() { "$KUBECTL" "$@"; }

# "<matching> <gpu-labelled> <ready-and-gpu-labelled>" for a node label selector.
node_counts() {
  k get nodes -l "$1" -o json | jq -r '
    [.items[] | {
      gpu: ((.metadata.labels // {}) as $l | all(["nvidia.com/gpu.product", "nvidia.com/gpu.count", "nvidia.com/gpu.memory"][]; ($l[.] // "") != "")),
      ready: (.metadata.deletionTimestamp == null and any(.status.conditions[]?; .type == "Ready" and .status == "True"))
    }] | "\(length) \(map(select(.gpu)) | length) \(map(select(.gpu and .ready)) | length)"'
}

# True when KAITO's webhook would admit an InferenceSet with this node label selector.
admissible() {
  local counts matching labelled ready
  counts="$(node_counts "$1")" || return 1
  read -r matching labelled ready <<<"$counts"
  [ "$matching" -gt 0 ] && [ "$labelled" -eq "$matching" ] && [ "$ready" -ge 1 ]
}

# Where the InferenceSet's vLLM pods are: "<on matching nodes> <on other nodes>", counting only
# pods bound to a node. Pods on other nodes are replicas from before a change of the selector
# (a capacity flip): KAITO does not move running replicas to a changed template
# (website/docs/inference.md), so they stay where they are until someone rolls them.
pod_placement() {
  local is_name="$1" selector="$2" matching_nodes
  matching_nodes="$(k get nodes -l "$selector" -o json | jq -c '[.items[].metadata.name]')"
  k -n "$NAMESPACE" get pods -l "inferenceset.kaito.sh/created-by=$is_name" -o json \
    | jq -r --argjson nodes "$matching_nodes" '
        [.items[] | .spec.nodeName // "" | select(. != "")] as $bound
        | "\([$bound[] | select(. as $n | $nodes | index($n))] | length) \([$bound[] | select(. as $n | $nodes | index($n) | not)] | length)"'
}

owner_uid=""
if [ -n "$OWNER_CONFIGMAP" ]; then
  owner_uid="$(k -n "$NAMESPACE" get configmap "$OWNER_CONFIGMAP" -o jsonpath='{.metadata.uid}')"
fi

apply_inferenceset() {
  local path="$1" file="$MANIFESTS_DIR/$1.inferenceset.yaml" out
  if [ -n "$owner_uid" ] && [ -n "$OWNER_UID_PLACEHOLDER" ]; then
    sed "s/$OWNER_UID_PLACEHOLDER/$owner_uid/" "$file" >"/tmp/$path.inferenceset.yaml"
    file="/tmp/$path.inferenceset.yaml"
  fi
  if out="$(k apply --server-side --force-conflicts --field-manager="$FIELD_MANAGER" -n "$NAMESPACE" -f "$file" 2>&1)"; then
    log "$path: $out"
    return 0
  fi
  log "$path: not admitted yet: $out"
  return 1
}

diagnose() {
  local path="$1" selector="$2" anchor="$3"
  log "$path: nodes matching $selector (name, Ready, nvidia.com/gpu.product):"
  k get nodes -l "$selector" -o custom-columns='NAME:.metadata.name,READY:.status.conditions[?(@.type=="Ready")].status,GPU:.metadata.labels.nvidia\.com/gpu\.product' 2>&1 || true
  log "$path: anchor pods and their scheduling events:"
  k -n "$NAMESPACE" get pods -l "app.kubernetes.io/component=node-anchor-$path" -o wide 2>&1 || true
  k -n "$NAMESPACE" get events --field-selector reason=FailedScheduling 2>&1 | grep -F "$anchor" || true
}

declare -a paths=()
declare -A inferenceset=() replicas=() selector=() anchor=() state=()
while IFS=$'\t' read -r path is_name wanted node_selector anchor_name; do
  [ -z "$path" ] && continue
  paths+=("$path")
  inferenceset[$path]="$is_name"; replicas[$path]="$wanted"; selector[$path]="$node_selector"; anchor[$path]="$anchor_name"
done <"$MANIFESTS_DIR/plan.tsv"

for path in "${paths[@]}"; do
  if admissible "${selector[$path]}"; then
    state[$path]=apply
  elif [ "${replicas[$path]}" -gt 0 ]; then
    log "$path: no admissible GPU node for ${selector[$path]} yet; creating node anchor ${anchor[$path]}"
    k apply --server-side --force-conflicts --field-manager="$FIELD_MANAGER" -n "$NAMESPACE" -f "$MANIFESTS_DIR/$path.node-anchor.yaml"
    state[$path]=wait-node
  else
    log "$path: parked at 0 replicas with no GPU node: KAITO's webhook refuses any change until a node exists, so the InferenceSet is left as it is; its template applies when the path is unparked"
    state[$path]=done
  fi
done

deadline=$((SECONDS + NODE_TIMEOUT_SECONDS))
while :; do
  pending=0
  for path in "${paths[@]}"; do
    case "${state[$path]}" in
      wait-node)
        if admissible "${selector[$path]}"; then log "$path: admissible GPU node is up"; state[$path]=apply; fi ;;
    esac
    case "${state[$path]}" in
      apply)
        if apply_inferenceset "$path"; then
          if k -n "$NAMESPACE" get deployment "${anchor[$path]}" >/dev/null 2>&1; then state[$path]=wait-pod; else state[$path]=done; fi
        fi ;;
    esac
    case "${state[$path]}" in done) ;; *) pending=$((pending + 1)) ;; esac
  done
  [ "$pending" -eq 0 ] && break
  # Once every InferenceSet is in, only the anchors' hand-over is left: give it its own budget.
  waiting_nodes=0
  for path in "${paths[@]}"; do case "${state[$path]}" in wait-node|apply) waiting_nodes=1 ;; esac; done
  if [ "$waiting_nodes" -eq 0 ]; then break; fi
  if [ "$SECONDS" -ge "$deadline" ]; then
    for path in "${paths[@]}"; do
      case "${state[$path]}" in wait-node|apply) diagnose "$path" "${selector[$path]}" "${anchor[$path]}" ;; esac
    done
    log "FAILED: no admissible GPU node within ${NODE_TIMEOUT_SECONDS}s for: $(for p in "${paths[@]}"; do case "${state[$p]}" in wait-node|apply) printf '%s ' "$p" ;; esac; done)"
    log "Fix: check the events above (GPU quota, spot capacity, NodePool limits), that GPU feature discovery runs on the GPU nodes (python scripts/preflight.py), then run helm upgrade again; the anchors stay so the nodes keep coming."
    exit 1
  fi
  sleep "$POLL_SECONDS"
done

pod_deadline=$((SECONDS + POD_TIMEOUT_SECONDS))
for path in "${paths[@]}"; do
  [ "${state[$path]}" = wait-pod ] || continue
  while :; do
    read -r on_matching on_other <<<"$(pod_placement "${inferenceset[$path]}" "${selector[$path]}")"
    if [ "$on_matching" -gt 0 ]; then
      log "$path: a vLLM pod holds a node labelled ${selector[$path]}; deleting node anchor ${anchor[$path]}"
      k -n "$NAMESPACE" delete deployment "${anchor[$path]}" --ignore-not-found
      break
    fi
    if [ "$on_other" -gt 0 ]; then
      # The selector changed under running replicas. Keep the anchor, so a node of the new kind
      # stays up for them, and say how to roll: KAITO admits the new replicas only while it exists.
      log "WARNING: $path: $on_other running replica(s) of ${inferenceset[$path]} are on nodes that no longer match ${selector[$path]}; KAITO does not move running replicas to a changed template."
      log "Roll them one at a time: kubectl -n $NAMESPACE get workspaces -l inferenceset.kaito.sh/created-by=${inferenceset[$path]}, then kubectl -n $NAMESPACE delete workspace <name> and wait for the new one to turn Ready. The node anchor ${anchor[$path]} keeps a new node up meanwhile; the next helm upgrade removes it."
      break
    fi
    if [ "$SECONDS" -ge "$pod_deadline" ]; then
      log "FAILED: $path: no vLLM pod of ${inferenceset[$path]} was bound to a node within ${POD_TIMEOUT_SECONDS}s; the anchor ${anchor[$path]} stays so its node is kept."
      log "Fix: kubectl -n $NAMESPACE describe inferenceset ${inferenceset[$path]}; kubectl -n $NAMESPACE get workspaces -l inferenceset.kaito.sh/created-by=${inferenceset[$path]}"
      exit 1
    fi
    sleep "$POLL_SECONDS"
  done
  state[$path]=done
done
# With serving.keepOnUninstall=false, an InferenceSet whose path was disabled goes too: Helm does not
# manage InferenceSets in byo mode, so it cannot remove them itself.
if [ -n "${PRUNE_SELECTOR:-}" ]; then
  for name in $(k -n "$NAMESPACE" get inferencesets.kaito.sh -l "$PRUNE_SELECTOR" -o jsonpath='{.items[*].metadata.name}'); do
    wanted=0
    for path in "${paths[@]}"; do [ "${inferenceset[$path]}" = "$name" ] && wanted=1; done
    if [ "$wanted" -eq 0 ]; then
      log "deleting InferenceSet $name: its path is disabled and serving.keepOnUninstall is false"
      k -n "$NAMESPACE" delete inferencesets.kaito.sh "$name" --ignore-not-found
    fi
  done
fi
log "all serving paths applied"
